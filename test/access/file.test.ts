// The access file re-read on change: touching it after rotating a secret puts the new secret in
// force without a restart (the text is the same, the secret file is not).
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AccessFile } from '../../server/access/index.ts';
import { captureLog, LEVEL } from '../helpers/log.ts';

test('a touch of the access file after rotating a secret puts the new secret in force; an untouched file keeps the old one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'armhook-access-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const secretFile = join(dir, 'deployer.secret');
  const file = join(dir, 'access.json');
  await writeFile(secretFile, 'old-secret\n');
  await chmod(secretFile, 0o600);
  await writeFile(file, JSON.stringify({ rules: [], signatures: { deployer: { scheme: 'hmac', secretFile, hooks: ['vm/*'] } } }));
  // Both files older than the racy window, so only a stat change makes the file read again.
  const past = new Date(Date.now() - 60_000);
  await utimes(file, past, past);
  const access = await AccessFile.open(file, captureLog().log);
  const secret = async (): Promise<string> => String((await access.current()).signatures[0]?.secret);
  assert.equal(await secret(), 'old-secret');

  await writeFile(secretFile, 'new-secret\n');
  assert.equal(await secret(), 'old-secret', 'the secret is read with the access file, not on every request');

  const now = new Date();
  await utimes(file, now, now);
  assert.equal(await secret(), 'new-secret');
});

test('loading a file whose GitHub secret serves several hooks logs a warning saying to give each hook its own secret', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'armhook-access-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const secretFile = join(dir, 'github.secret');
  const file = join(dir, 'access.json');
  await writeFile(secretFile, 'gh-secret\n', { mode: 0o600 });
  await writeFile(file, JSON.stringify({ signatures: { github: { scheme: 'github', secretFile, hooks: ['ci/build', 'ci/deploy'] } } }));
  const captured = captureLog();
  await AccessFile.open(file, captured.log);
  const warning = captured.lines().find((l) => l.level === LEVEL.warn);
  assert.match(warning?.msg ?? '', /signatures\.github \(github\) serves several hooks \(ci\/build, ci\/deploy\).*its own entry and secret/);
});
