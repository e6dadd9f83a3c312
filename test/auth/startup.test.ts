// An htpasswd file that can't be used stops `armhook serve` with one line saying what to do:
// an operator reads it in journald, so no stack trace.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { CLI, COMPILE_CACHE_ENV, NODE } from '../helpers/process.ts';

const run = promisify(execFile);

for (const [name, content] of [
  ['without users', '# only a comment\n'],
  ['missing', null],
] as const) {
  test(`armhook serve with an htpasswd file ${name}: exit 2 (a setting to fix), one line naming the file and the fix, no stack trace`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'armhook-startup-'));
    const file = join(dir, 'htpasswd');
    if (content !== null) await writeFile(file, content);
    const env = {
      PATH: process.env['PATH'] ?? '',
      ARMHOOK_HTPASSWD: file,
      ARMHOOK_DATA_DIR: join(dir, 'data'),
      ARMHOOK_TLS_DIR: join(dir, 'tls'),
      ARMHOOK_LISTEN: '127.0.0.1:0',
      ...COMPILE_CACHE_ENV,
    };
    const failed = await run(NODE, [CLI, 'serve'], { env, cwd: dir }).then(
      () => assert.fail('serve started with an unusable htpasswd file'),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(failed.code, 2);
    const lines = failed.stderr.trim().split('\n');
    assert.equal(lines.length, 1, failed.stderr);
    assert.ok(lines[0]?.includes(file), failed.stderr);
    assert.match(lines[0] ?? '', /armhook passwd/);
    assert.doesNotMatch(failed.stderr, /\bat .+\.ts:\d+/);
  });
}
