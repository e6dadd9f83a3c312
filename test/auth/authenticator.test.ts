import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { HtpasswdAuthenticator } from '../../server/auth/index.ts';
import { setPassword } from '../../server/auth/passwd.ts';
import { captureLog, htpasswd, LEVEL, tempDir } from './helpers.ts';

const sha = (pw: string): string => `{SHA}${createHash('sha1').update(pw).digest('base64')}`;

/** A file with one user per hash form htpasswd writes. */
async function mixedFile(dir: string): Promise<string> {
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'bcrypt-user', 'pw-bcrypt');
  htpasswd('-bm', file, 'apr1-user', 'pw-apr1');
  htpasswd('-bs', file, 'sha-user', 'pw-sha');
  return file;
}

test('open(): users of every supported form authenticate; wrong password and unknown user fail', async (t) => {
  const dir = await tempDir(t);
  const file = await mixedFile(dir);
  const cap = captureLog();
  const auth = await HtpasswdAuthenticator.open({ file, log: cap.log });
  assert.deepEqual(auth.users(), ['bcrypt-user', 'apr1-user', 'sha-user']);

  assert.equal(await auth.authenticate('bcrypt-user', 'pw-bcrypt'), true);
  assert.equal(await auth.authenticate('apr1-user', 'pw-apr1'), true);
  assert.equal(await auth.authenticate('sha-user', 'pw-sha'), true);

  assert.equal(await auth.authenticate('bcrypt-user', 'pw-apr1'), false);
  assert.equal(await auth.authenticate('apr1-user', 'PW-APR1'), false);
  assert.equal(await auth.authenticate('sha-user', ''), false);
  assert.equal(await auth.authenticate('BCRYPT-USER', 'pw-bcrypt'), false, 'user names are case-sensitive');

  const before = auth.stats().dummyVerifications;
  assert.equal(await auth.authenticate('mallory', 'pw-bcrypt'), false);
  assert.equal(await auth.authenticate('', ''), false);
  assert.equal(auth.stats().dummyVerifications, before + 2, 'unknown users still run a (dummy) verification');

  const info = cap.lines().find((l) => l.level === LEVEL.info && l.msg.includes('loaded htpasswd file'));
  assert.ok(info, 'the load is logged');
  assert.equal(info['users'], 3);
});

test('malformed lines are skipped with a warning; unsupported hashes are denied with a reason, no crash', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  const des = htpasswd('-nbd', 'olduser', 'oldpass').trim();
  await writeFile(file, ['# operators may comment', 'not-a-valid-line', ':{SHA}nouser=', `good:${sha('good-pw')}`, 'nohash:', des, ''].join('\n'));
  const cap = captureLog();
  const auth = await HtpasswdAuthenticator.open({ file, log: cap.log });
  assert.equal(await auth.authenticate('good', 'good-pw'), true);
  assert.equal(await auth.authenticate('olduser', 'oldpass'), false, 'DES crypt is never accepted');
  assert.equal(await auth.authenticate('nohash', ''), false);

  const warns = cap.lines().filter((l) => l.level === LEVEL.warn);
  assert.ok(
    warns.some((w) => w.msg.includes('line 2 skipped')),
    'line 2 warned',
  );
  assert.ok(
    warns.some((w) => w.msg.includes('line 3 skipped')),
    'line 3 warned',
  );
  assert.ok(
    warns.some((w) => w.msg.includes('line 5 skipped')),
    'line 5 warned',
  );
  const unsupported = warns.filter((w) => w.msg.includes('unsupported hash type'));
  assert.equal(unsupported.length, 1, 'the unsupported user is reported once per load');
  assert.match(unsupported[0]!.msg, /user "olduser" .*DES crypt.*armhook passwd/);
  assert.ok(!cap.text().includes('not-a-valid-line'), 'line contents are not logged');
  assert.ok(!cap.text().includes(des.split(':')[1]!), 'hashes are not logged');
  assert.deepEqual(auth.users(), ['good', 'olduser']);
});

test('open() throws a clear error when the file is missing, empty, a directory or has no usable user', async (t) => {
  const dir = await tempDir(t);
  const cap = captureLog();
  const open = (file: string) => HtpasswdAuthenticator.open({ file, log: cap.log });

  const missing = join(dir, 'nope');
  await assert.rejects(open(missing), (err: Error) => {
    assert.ok(err.message.includes(missing) && err.message.includes('does not exist'), err.message);
    assert.ok(err.message.includes(`armhook passwd ${missing}`), err.message);
    return true;
  });

  const empty = join(dir, 'empty');
  await writeFile(empty, '# only a comment\n\n');
  await assert.rejects(open(empty), /has no valid user; add one with `armhook passwd/);

  const junk = join(dir, 'junk');
  await writeFile(junk, 'no colon here\n:\n');
  await assert.rejects(open(junk), /has no valid user/);

  const legacy = join(dir, 'legacy');
  htpasswd('-cbp', legacy, 'plain', 'text');
  htpasswd('-b5', legacy, 'sha512', 'text');
  await assert.rejects(open(legacy), (err: Error) => {
    assert.match(err.message, /no user with a supported password hash/);
    assert.match(err.message, /user "plain" has an unsupported hash type/);
    assert.match(err.message, /user "sha512" has an unsupported hash type \(SHA-512-crypt/);
    return true;
  });

  const adir = join(dir, 'adir');
  await mkdir(adir);
  await assert.rejects(open(adir), /is a directory/);
});

test('a user added to the file after start works, a removed user is denied, without restart', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'alice', 'alice-pw');
  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log });
  assert.equal(await auth.authenticate('alice', 'alice-pw'), true);
  assert.equal(await auth.authenticate('bob', 'bob-pw'), false);

  htpasswd('-bB', file, 'bob', 'bob-pw'); // htpasswd rewrites the file in place
  assert.equal(await auth.authenticate('bob', 'bob-pw'), true, 'new user picked up');
  assert.deepEqual(auth.users(), ['alice', 'bob']);

  htpasswd('-D', file, 'alice');
  assert.equal(await auth.authenticate('alice', 'alice-pw'), false, 'removed user denied (cache dropped)');
  assert.equal(await auth.authenticate('bob', 'bob-pw'), true);
  assert.deepEqual(auth.users(), ['bob']);
});

test('a changed password stops working at once even though the old one was cached', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'alice', 'old-pw');
  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log });
  assert.equal(await auth.authenticate('alice', 'old-pw'), true);
  assert.equal(await auth.authenticate('alice', 'old-pw'), true);
  assert.equal(auth.stats().cacheHits, 1, 'second success came from the cache');

  htpasswd('-bB', file, 'alice', 'new-pw'); // same size, same inode: only the timestamps differ
  assert.equal(await auth.authenticate('alice', 'old-pw'), false);
  assert.equal(await auth.authenticate('alice', 'new-pw'), true);

  await setPassword(file, 'alice', 'newer-pw', { cost: 4 }); // atomic rename: new inode
  assert.equal(await auth.authenticate('alice', 'new-pw'), false);
  assert.equal(await auth.authenticate('alice', 'newer-pw'), true);
});

test('an in-place edit of the same size right after a read is still seen (coarse timestamps)', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  await writeFile(file, `alice:${sha('aaaa')}\n`);
  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log });
  assert.equal(await auth.authenticate('alice', 'aaaa'), true);
  // Same length, same inode, possibly the same mtime tick as the version already read.
  await writeFile(file, `alice:${sha('bbbb')}\n`);
  assert.equal(await auth.authenticate('alice', 'aaaa'), false);
  assert.equal(await auth.authenticate('alice', 'bbbb'), true);
});

test('touching the file without changing it keeps the cache', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'alice', 'pw');
  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log });
  assert.equal(await auth.authenticate('alice', 'pw'), true);
  const loads = auth.stats().loads;
  const later = new Date(Date.now() + 3_600_000);
  await utimes(file, later, later);
  assert.equal(await auth.authenticate('alice', 'pw'), true);
  assert.equal(auth.stats().cacheHits, 1);
  assert.equal(auth.stats().loads, loads, 'same content is not a new load');
});

test('cache: successes expire after the TTL, failures are never cached', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'alice', 'pw');
  let clock = 1_000_000;
  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log, cacheTtlMs: 5_000, now: () => clock });

  assert.equal(await auth.authenticate('alice', 'wrong'), false);
  assert.equal(await auth.authenticate('alice', 'wrong'), false);
  assert.deepEqual([auth.stats().verifications, auth.stats().cacheHits], [2, 0], 'failures re-verify');

  assert.equal(await auth.authenticate('alice', 'pw'), true);
  clock += 4_999;
  assert.equal(await auth.authenticate('alice', 'pw'), true);
  assert.deepEqual([auth.stats().verifications, auth.stats().cacheHits], [3, 1], 'within the TTL: cache hit');
  assert.equal(await auth.authenticate('alice', 'wrong'), false, 'a cached success does not admit other passwords');

  clock += 1;
  assert.equal(await auth.authenticate('alice', 'pw'), true);
  assert.deepEqual([auth.stats().verifications, auth.stats().cacheHits], [5, 1], 'expired: verified again');
});

test('cache: bounded in size, oldest dropped first; cacheTtlMs 0 disables it', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  await writeFile(file, ['a', 'b', 'c'].map((u) => `${u}:${sha(`${u}-pw`)}`).join('\n') + '\n');
  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log, cacheMaxEntries: 2 });
  for (const u of ['a', 'b', 'c']) assert.equal(await auth.authenticate(u, `${u}-pw`), true);
  assert.equal(auth.stats().verifications, 3);
  assert.equal(await auth.authenticate('c', 'c-pw'), true);
  assert.equal(await auth.authenticate('b', 'b-pw'), true);
  assert.deepEqual([auth.stats().verifications, auth.stats().cacheHits], [3, 2], 'b and c still cached');
  assert.equal(await auth.authenticate('a', 'a-pw'), true);
  assert.deepEqual([auth.stats().verifications, auth.stats().cacheHits], [4, 2], 'a was evicted');

  const uncached = await HtpasswdAuthenticator.open({ file, log: captureLog().log, cacheTtlMs: 0 });
  assert.equal(await uncached.authenticate('a', 'a-pw'), true);
  assert.equal(await uncached.authenticate('a', 'a-pw'), true);
  assert.deepEqual([uncached.stats().verifications, uncached.stats().cacheHits], [2, 0]);
});

test('concurrent identical requests share one verification', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'alice', 'pw');
  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log });
  const results = await Promise.all(Array.from({ length: 8 }, () => auth.authenticate('alice', 'pw')));
  assert.deepEqual(results, Array(8).fill(true));
  assert.equal(auth.stats().verifications, 1);
  const wrong = await Promise.all(Array.from({ length: 3 }, () => auth.authenticate('alice', 'nope')));
  assert.deepEqual(wrong, [false, false, false]);
});

test('a file that disappears denies everyone (even cached users) with one error log, and recovers', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'alice', 'pw');
  const cap = captureLog();
  const auth = await HtpasswdAuthenticator.open({ file, log: cap.log });
  assert.equal(await auth.authenticate('alice', 'pw'), true);

  await rename(file, `${file}.bak`);
  assert.equal(await auth.authenticate('alice', 'pw'), false);
  assert.equal(await auth.authenticate('alice', 'pw'), false);
  assert.equal(await auth.authenticate('nobody', 'pw'), false);
  const errors = cap.lines().filter((l) => l.level === LEVEL.error);
  assert.equal(errors.length, 1, 'logged once, not per request');
  assert.equal(errors[0]!['code'], 'ENOENT');
  assert.ok(errors[0]!.msg.includes(file) && errors[0]!.msg.includes('every request is denied'), errors[0]!.msg);
  assert.ok(errors[0]!.msg.includes(`armhook passwd ${file}`), errors[0]!.msg);
  assert.deepEqual(auth.users(), []);

  await rename(`${file}.bak`, file);
  assert.equal(await auth.authenticate('alice', 'pw'), true);
  assert.ok(cap.lines().some((l) => l.level === LEVEL.info && l.msg.includes('readable again')));
});

test('a file replaced by a directory, or emptied, denies everyone with an error log', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'alice', 'pw');
  const cap = captureLog();
  const auth = await HtpasswdAuthenticator.open({ file, log: cap.log });
  assert.equal(await auth.authenticate('alice', 'pw'), true);

  await rm(file);
  await mkdir(file);
  assert.equal(await auth.authenticate('alice', 'pw'), false);
  assert.ok(cap.lines().some((l) => l.level === LEVEL.error && l.code === 'EISDIR' && l.msg.includes('is a directory')));

  await rm(file, { recursive: true });
  await writeFile(file, '');
  assert.equal(await auth.authenticate('alice', 'pw'), false);
  assert.ok(cap.lines().some((l) => l.level === LEVEL.error && l.msg.includes('has no valid user')));
});

test('an unreadable file (permissions) denies everyone with an error log', async (t) => {
  // Root reads any file, so as root the scenario runs in a child process as "nobody".
  if (process.getuid?.() === 0) {
    const script = `
      import { execFileSync } from 'node:child_process';
      import { chmod, mkdtemp } from 'node:fs/promises';
      import { tmpdir } from 'node:os';
      import { join } from 'node:path';
      import { pino } from 'pino';
      import { HtpasswdAuthenticator } from ${JSON.stringify(new URL('../../server/auth/index.ts', import.meta.url).href)};
      const lines = [];
      const log = pino({ level: 'trace' }, { write: (l) => lines.push(JSON.parse(l)) });
      const file = join(await mkdtemp(join(tmpdir(), 'armhook-nobody-')), 'htpasswd');
      execFileSync('htpasswd', ['-cbB', file, 'alice', 'pw'], { stdio: 'ignore' });
      const auth = await HtpasswdAuthenticator.open({ file, log });
      const before = await auth.authenticate('alice', 'pw');
      await chmod(file, 0o000);
      const after = await auth.authenticate('alice', 'pw');
      console.log(JSON.stringify({ before, after, logged: lines.some((l) => l.level === 50 && l.msg.includes('permission denied')) }));
    `;
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      uid: 65534,
      gid: 65534,
      cwd: new URL('../..', import.meta.url).pathname,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    assert.deepEqual(JSON.parse(out.toString()), { before: true, after: false, logged: true });
    return;
  }
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'alice', 'pw');
  const cap = captureLog();
  const auth = await HtpasswdAuthenticator.open({ file, log: cap.log });
  assert.equal(await auth.authenticate('alice', 'pw'), true);
  await chmod(file, 0o000);
  assert.equal(await auth.authenticate('alice', 'pw'), false);
  assert.ok(cap.lines().some((l) => l.level === LEVEL.error && l.msg.includes('permission denied')));
});

test('constructed without open(): loads on first use and denies (no throw) when the file is missing', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  const cap = captureLog();
  const auth = new HtpasswdAuthenticator({ file, log: cap.log });
  assert.equal(await auth.authenticate('alice', 'pw'), false);
  assert.ok(cap.lines().some((l) => l.level === LEVEL.error && l.code === 'ENOENT'));
  htpasswd('-cbm', file, 'alice', 'pw');
  assert.equal(await auth.authenticate('alice', 'pw'), true);
});

test('oversized passwords and user names are refused without hashing', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbm', file, 'alice', 'pw');
  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log });
  assert.equal(await auth.authenticate('alice', 'x'.repeat(5000)), false);
  assert.equal(await auth.authenticate('a'.repeat(300), 'pw'), false);
  assert.equal(auth.stats().verifications + auth.stats().dummyVerifications, 0);
});

test('log output never contains passwords or hashes', async (t) => {
  const dir = await tempDir(t);
  const file = await mixedFile(dir);
  htpasswd('-b2', file, 'sha256-user', 'pw-sha256');
  await writeFile(file, (await readFile(file, 'utf8')) + 'broken-line-pw-leak\nx:\n');
  const cap = captureLog();
  const auth = await HtpasswdAuthenticator.open({ file, log: cap.log });
  for (const [u, p] of [
    ['bcrypt-user', 'pw-bcrypt'],
    ['apr1-user', 'wrong-apr1'],
    ['sha256-user', 'pw-sha256'],
    ['ghost', 'pw-ghost'],
  ] as const) {
    await auth.authenticate(u, p);
  }
  const hashesIn = async (): Promise<string[]> => [...(await readFile(file, 'utf8')).matchAll(/^[^:\n]+:([^:\n]+)$/gm)].map((m) => m[1]!);
  const hashes = await hashesIn();
  assert.equal(hashes.length, 4);
  await setPassword(file, 'apr1-user', 'pw-changed', { cost: 4 });
  assert.equal(await auth.authenticate('apr1-user', 'pw-changed'), true);
  hashes.push(...(await hashesIn()));
  await rm(file);
  await auth.authenticate('bcrypt-user', 'pw-bcrypt');

  const text = cap.text();
  assert.ok(text.length > 0);
  for (const secret of ['pw-bcrypt', 'wrong-apr1', 'pw-sha256', 'pw-ghost', 'pw-changed', 'pw-leak', ...hashes]) {
    assert.ok(!text.includes(secret), `log contains ${secret}`);
  }
});
