// The spawn helper on its own (no HTTP): the spawn request carries the environment exactly, and
// what can't be carried (a NUL, a name with '=') is refused before anything starts.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import type { ScriptRunOptions, ScriptRunResult } from '../../server/hooks/runner.ts';
import { SpawnHelper } from '../../server/hooks/spawn-helper.ts';

let dir: string;
let helper: SpawnHelper;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'armhook-spawn-helper-'));
  // Prints its environment, sorted, and leaves a marker: proof that it ran.
  await writeFile(join(dir, 'env.sh'), '#!/bin/sh\ntouch "$MARKER"\nenv | sort\n', { mode: 0o755 });
  const created = SpawnHelper.create(pino({ level: 'silent' }));
  assert.ok(created, 'python3 is needed for the spawn helper');
  helper = created;
});
after(async () => {
  helper.close();
  await rm(dir, { recursive: true, force: true });
});

async function run(env: Record<string, string>): Promise<ScriptRunResult & { output: string }> {
  let output = '';
  const options: ScriptRunOptions = {
    file: join(dir, 'env.sh'),
    cwd: dir,
    env,
    stdin: Buffer.alloc(0),
    signal: new AbortController().signal,
    killGraceMs: 2000,
    onStart() {},
    onOutput: (_stream, chunk) => void (output += chunk.toString('utf8')),
  };
  return { ...(await helper.run(options)), output };
}

test('the environment arrives exactly: UTF-8, "=" and spaces in values, an empty value, nothing else', async () => {
  const marker = join(dir, 'ran-exact');
  const result = await run({ MARKER: marker, PATH: '/usr/bin:/bin', UNICODE: 'héllo wörld ✓', EQUALS: 'a=b=c', EMPTY: '', SPACES: '  two  ' });
  assert.equal(result.startError, undefined);
  assert.equal(result.exitCode, 0);
  const lines = result.output
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('PWD=') && !l.startsWith('SHLVL=') && !l.startsWith('_='));
  assert.deepEqual(lines, ['EMPTY=', 'EQUALS=a=b=c', `MARKER=${marker}`, 'PATH=/usr/bin:/bin', 'SPACES=  two  ', 'UNICODE=héllo wörld ✓']);
});

test('a NUL in a value, or a name with "=", is refused before anything runs; the helper keeps serving', async () => {
  const nul = join(dir, 'ran-nul');
  const withNul = await run({ MARKER: nul, PATH: '/usr/bin:/bin', BAD: 'a\0b' });
  assert.equal(withNul.exitCode, null);
  assert.match(withNul.startError ?? '', /NUL byte/);
  const eq = join(dir, 'ran-eq');
  const withEquals = await run({ MARKER: eq, PATH: '/usr/bin:/bin', 'A=B': 'x' });
  assert.match(withEquals.startError ?? '', /variable name "A=B" is not valid/);
  assert.equal(existsSync(nul) || existsSync(eq), false, 'nothing ran');
  const fine = join(dir, 'ran-after');
  assert.equal((await run({ MARKER: fine, PATH: '/usr/bin:/bin' })).exitCode, 0);
  assert.ok(existsSync(fine));
});
