// Password checks run on worker threads, a bound on checks in flight refuses the rest before any
// hashing, and unknown users are checked against random hashes of the file's own classes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import bcrypt from 'bcryptjs';
import {
  AuthBusyError,
  dummyHashLike,
  hashClass,
  HtpasswdAuthenticator,
  parseHtpasswd,
  verifyPassword,
  type PasswordVerifier,
} from '../../server/auth/index.ts';
import { captureLog, htpasswd, tempDir } from './helpers.ts';

const sha = (pw: string): string => `{SHA}${createHash('sha1').update(pw).digest('base64')}`;

test("passwords are checked on a worker thread: this thread's bcrypt is never called", async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', '-C', '4', file, 'alice', 'pw-alice');
  const poisoned = bcrypt as unknown as Record<string, unknown>;
  const saved = { ...poisoned };
  for (const name of ['hash', 'hashSync', 'compare', 'compareSync']) {
    poisoned[name] = () => {
      throw new Error(`bcrypt.${name} ran on the event loop thread`);
    };
  }
  t.after(() => Object.assign(poisoned, saved));
  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log, cacheTtlMs: 0 });
  t.after(() => auth.close());
  assert.equal(await auth.authenticate('alice', 'pw-alice'), true);
  assert.equal(await auth.authenticate('alice', 'wrong'), false);
  assert.equal(await auth.authenticate('nobody', 'pw-alice'), false);
  assert.equal(auth.stats().verifications, 2);
});

test('past maxVerifications a check is refused at once with AuthBusyError, before anything is hashed', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  // Cost 12: each check takes long enough that all guesses below arrive while two still run.
  htpasswd('-cbB', '-C', '12', file, 'alice', 'pw-alice');
  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log, verifyThreads: 1, maxVerifications: 2 });
  t.after(() => auth.close());
  assert.equal(await auth.authenticate('alice', 'pw-alice'), true);
  const verified = auth.stats().verifications;
  const guesses = await Promise.allSettled([
    ...['g1', 'g2', 'g3', 'g4'].map((pw) => auth.authenticate('alice', pw)),
    auth.authenticate('nobody', 'x'),
    auth.authenticate('alice', 'pw-alice'),
  ]);
  assert.deepEqual(
    guesses.map((g) => g.status),
    ['fulfilled', 'fulfilled', 'rejected', 'rejected', 'rejected', 'fulfilled'],
  );
  for (const g of guesses.slice(2, 5)) {
    const err = (g as PromiseRejectedResult).reason as AuthBusyError;
    assert.ok(err instanceof AuthBusyError, String(err));
    assert.equal(err.status, 503);
    assert.equal(err.retryAfterSeconds, 1);
  }
  assert.deepEqual(guesses[5], { status: 'fulfilled', value: true }, 'verified credentials need no check');
  assert.equal(auth.stats().verifications - verified, 2, 'the refused guesses hashed nothing');
  assert.equal(auth.stats().dummyVerifications, 0);
  // The bound is free again once the checks are done.
  assert.equal(await auth.authenticate('nobody', 'x'), false);
});

/** A verifier that records what it is asked to check and never matches. */
function recordingVerifier(): PasswordVerifier & { hashes: string[] } {
  const hashes: string[] = [];
  return { hashes, tryVerify: (_pw, hash) => (hashes.push(hash), Promise.resolve(false)), close: async () => undefined };
}

test('an unknown user is checked against a random hash of a class in the file, the same class for the same name, never a real hash', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', '-C', '4', file, 'b4-one', 'pw');
  htpasswd('-bB', '-C', '4', file, 'b4-two', 'pw');
  htpasswd('-bB', '-C', '5', file, 'b5', 'pw');
  htpasswd('-bm', file, 'apr', 'pw');
  htpasswd('-bs', file, 'sha', 'pw');
  const real = [...parseHtpasswd(await readFile(file, 'utf8')).entries.values()].map((e) => e.hash);
  const verifier = recordingVerifier();
  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log, verifier });

  const classOf = new Map<string, string>();
  for (let i = 0; i < 400; i++) {
    assert.equal(await auth.authenticate(`stranger-${i}`, 'pw'), false);
    classOf.set(`stranger-${i}`, hashClass(verifier.hashes.at(-1)!));
  }
  const seen = new Map<string, number>();
  for (const cls of classOf.values()) seen.set(cls, (seen.get(cls) ?? 0) + 1);
  assert.deepEqual([...seen.keys()].sort(), ['apr1', 'bcrypt:04', 'bcrypt:05', 'sha1'], 'every class of the file is used');
  assert.ok(seen.get('bcrypt:04')! > seen.get('bcrypt:05')!, `classes are weighted by their users: ${JSON.stringify([...seen])}`);
  for (const hash of verifier.hashes) assert.ok(!real.includes(hash), 'a dummy is never a real entry');
  for (let i = 0; i < 20; i++) {
    await auth.authenticate(`stranger-${i}`, 'other');
    assert.equal(hashClass(verifier.hashes.at(-1)!), classOf.get(`stranger-${i}`), 'the same name, the same class');
  }
});

test('dummyHashLike: same class as the model, random, and no password matches it', () => {
  const models = [
    bcrypt.hashSync('pw', bcrypt.genSaltSync(4)).replace(/^\$2b\$/, '$2y$'),
    '$apr1$abcdefgh$0123456789abcdefghijkl',
    '$1$salt$0123456789abcdefghijkl',
    sha('pw'),
  ];
  for (const model of models) {
    const dummy = dummyHashLike(model);
    assert.equal(hashClass(dummy), hashClass(model), model);
    assert.notEqual(dummy, dummyHashLike(model));
    assert.equal(verifyPassword('pw', dummy), false);
    assert.equal(verifyPassword('', dummy), false);
  }
});
