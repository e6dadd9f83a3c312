// `armhook run`: the server's script path (catalog, parameter rules, environment, masking) with
// output straight to the terminal and the script's exit code passed through. A child process each.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, COMPILE_CACHE_ENV, NODE } from '../helpers/process.ts';

let dir: string;
let scratch: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      NODE,
      [CLI, 'run', ...args],
      {
        cwd: dir,
        env: {
          PATH: process.env['PATH'] ?? '/usr/bin:/bin',
          HOME: dir,
          TMPDIR: scratch,
          ARMHOOK_SCRIPTS_DIR: join(dir, 'scripts'),
          ARMHOOK_TEST_MARKERS: join(dir, 'markers'),
          ...COMPILE_CACHE_ENV,
        },
        timeout: 60_000,
      },
      (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin ?? '');
  });
}

async function script(path: string, text: string, mode = 0o755): Promise<void> {
  await mkdir(join(dir, 'scripts', path, '..'), { recursive: true });
  await writeFile(join(dir, 'scripts', path), text, { mode });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'armhook-run-test-'));
  scratch = join(dir, 'tmp');
  await mkdir(scratch);
  await mkdir(join(dir, 'markers'));
  await script(
    'vm/hello.sh',
    [
      '#!/bin/sh',
      '# @param name required pattern=[a-z]+ who to greet',
      '# @param pw secret a password',
      'echo "hello $name from $ARMHOOK_HOOK ($ARMHOOK_METHOD)"',
      'echo "pw is $pw" >&2',
      'printf "no line end"',
      'test -d "$AZURE_CONFIG_DIR" && echo "az config dir $(stat -c %a "$AZURE_CONFIG_DIR")"',
      'cat',
      'touch "$ARMHOOK_TEST_MARKERS/hello"',
      'exit 3',
    ].join('\n'),
  );
  await script('broken.sh', '#!/no/such/interpreter\necho never\n');
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('armhook run', () => {
  test('runs the hook with its parameters and stdin, masks secrets, passes the exit code through, leaves no scratch', async () => {
    const r = await run(['/vm/hello', 'name=world', 'pw=hunter2'], 'from stdin\n');
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'hello world from vm/hello (RUN)\nno line endaz config dir 700\nfrom stdin\n');
    assert.equal(r.stderr, 'pw is ***\n');
    assert.deepEqual(
      (await readdir(scratch)).filter((name) => name.startsWith('armhook')),
      [],
      'the scratch directory is removed',
    );
  });

  test('a parameter the header refuses is a clear error, exit 2, and nothing ran', async () => {
    await rm(join(dir, 'markers', 'hello'), { force: true });
    const r = await run(['vm/hello', 'name=NOT-OK']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^armhook: .*name/);
    assert.equal(r.stdout, '');
    await assert.rejects(access(join(dir, 'markers', 'hello')), 'the script did not run');
  });

  test('usage errors: no hook, an unknown hook, a pair without =', async () => {
    assert.deepEqual(await run([]), { code: 2, stdout: '', stderr: 'usage: armhook run <hook> [name=value ...]\n' });
    const unknown = await run(['nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no hook "nope"/);
    const pair = await run(['vm/hello', 'name']);
    assert.equal(pair.code, 2);
    assert.match(pair.stderr, /"name" is not name=value/);
  });

  test('a script that cannot start exits 126 and says why', async () => {
    const r = await run(['broken']);
    assert.equal(r.code, 126);
    assert.match(r.stderr, /^armhook: could not start broken: .*Check its #! line/);
  });
});
