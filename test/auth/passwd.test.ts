import assert from 'node:assert/strict';
import { chmod, chown, lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { HtpasswdAuthenticator, removeUser, setPassword, validateUserName } from '../../server/auth/index.ts';
import { parseHtpasswd } from '../../server/auth/htpasswd.ts';
import { captureLog, htpasswd, htpasswdVerifies, tempDir } from './helpers.ts';

test('setPassword creates a 0600 file with a $2y$ cost-10 entry that the real htpasswd -v accepts', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  assert.equal(await setPassword(file, 'alice', 'alice-pw'), 'added');

  const st = await stat(file);
  assert.equal(st.mode & 0o777, 0o600);
  const text = await readFile(file, 'utf8');
  assert.match(text, /^alice:\$2y\$10\$[./A-Za-z0-9]{53}\n$/);

  assert.equal(htpasswdVerifies(file, 'alice', 'alice-pw'), true, 'htpasswd -v accepts the password');
  assert.equal(htpasswdVerifies(file, 'alice', 'wrong'), false, 'htpasswd -v rejects a wrong password');

  const auth = await HtpasswdAuthenticator.open({ file, log: captureLog().log });
  assert.equal(await auth.authenticate('alice', 'alice-pw'), true);
  assert.equal(await auth.authenticate('alice', 'wrong'), false);
});

test('setPassword: non-ASCII passwords agree with htpasswd -v', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  await setPassword(file, 'jörg', 'grüße-🔑', { cost: 4 });
  assert.equal(htpasswdVerifies(file, 'jörg', 'grüße-🔑'), true);
  assert.equal(htpasswdVerifies(file, 'jörg', 'grusse-🔑'), false);
});

test('setPassword updates a user in place and keeps every other line byte for byte', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbm', file, 'apr1-user', 'pw-apr1');
  htpasswd('-bs', file, 'sha-user', 'pw-sha');
  htpasswd('-bB', file, 'alice', 'old-pw');
  htpasswd('-bB', file, 'zed', 'zed-pw');
  const original = await readFile(file, 'utf8');
  const [l1, l2, l3, l4] = original.trimEnd().split('\n');
  // Things htpasswd itself would refuse but an operator may have: comments, junk, a duplicate.
  await writeFile(file, `# managed by hand\n${l1}\n${l3}\nnot a valid line\n${l2}\n\n${l4}\nalice:{SHA}stale-duplicate=\n`);

  assert.equal(await setPassword(file, 'alice', 'new-pw', { cost: 4 }), 'updated');
  const lines = (await readFile(file, 'utf8')).split('\n');
  assert.equal(lines[0], '# managed by hand');
  assert.equal(lines[1], l1);
  assert.match(lines[2]!, /^alice:\$2y\$04\$/);
  assert.notEqual(lines[2], l3);
  assert.equal(lines[3], 'not a valid line');
  assert.equal(lines[4], l2);
  assert.equal(lines[5], '');
  assert.equal(lines[6], l4);
  assert.equal(lines[7], '', 'the later duplicate of alice is dropped; file ends with a newline');
  assert.equal(lines.length, 8);

  const cap = captureLog();
  const auth = await HtpasswdAuthenticator.open({ file, log: cap.log });
  assert.equal(await auth.authenticate('alice', 'new-pw'), true);
  assert.equal(await auth.authenticate('alice', 'old-pw'), false);
  assert.equal(await auth.authenticate('apr1-user', 'pw-apr1'), true);
  assert.equal(await auth.authenticate('sha-user', 'pw-sha'), true);
  assert.equal(await auth.authenticate('zed', 'zed-pw'), true);
});

test('setPassword keeps CRLF line endings and adds a missing final newline', async (t) => {
  const dir = await tempDir(t);
  const crlf = join(dir, 'crlf');
  await writeFile(crlf, '# c\r\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\r\n');
  await setPassword(crlf, 'alice', 'pw', { cost: 4 });
  const text = await readFile(crlf, 'utf8');
  assert.match(text, /^# c\r\nbob:\{SHA\}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\r\nalice:\$2y\$04\$[^\r\n]+\r\n$/);

  const bare = join(dir, 'bare');
  await writeFile(bare, 'bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=');
  await setPassword(bare, 'alice', 'pw', { cost: 4 });
  assert.match(await readFile(bare, 'utf8'), /^bob:\{SHA\}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nalice:\$2y\$04\$[^\n]+\n$/);
});

test('setPassword writes atomically: new inode, no temp files left, existing mode kept', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'alice', 'pw');
  await chmod(file, 0o640);
  const before = await stat(file);
  await setPassword(file, 'bob', 'pw', { cost: 4 });
  const after = await stat(file);
  assert.notEqual(after.ino, before.ino, 'replaced by rename, not rewritten in place');
  assert.equal(after.mode & 0o777, 0o640, 'mode of an existing file is kept');
  assert.deepEqual(await readdir(dir), ['htpasswd']);
});

test('setPassword keeps the owner of an existing file (when run as root)', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root to chown');
    return;
  }
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'alice', 'pw');
  await chown(file, 4242, 4343);
  await setPassword(file, 'alice', 'pw2', { cost: 4 });
  const st = await stat(file);
  assert.deepEqual([st.uid, st.gid], [4242, 4343]);
});

test('setPassword through a symlink edits the target and keeps the link', async (t) => {
  const dir = await tempDir(t);
  const target = join(dir, 'real-htpasswd');
  const link = join(dir, 'htpasswd');
  htpasswd('-cbB', target, 'alice', 'pw');
  await symlink(target, link);
  await setPassword(link, 'bob', 'bob-pw', { cost: 4 });
  assert.ok((await lstat(link)).isSymbolicLink());
  assert.equal(htpasswdVerifies(target, 'bob', 'bob-pw'), true);
  assert.equal(htpasswdVerifies(target, 'alice', 'pw'), true);
});

test('invalid user names, passwords and costs are refused with clear errors and nothing is written', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  const bad: Array<[string, RegExp]> = [
    ['', /invalid user name "": it is empty/],
    ['a:b', /must not contain ":"/],
    ['a\nb', /must not contain newlines/],
    ['a\rb', /control characters/],
    [' alice', /whitespace/],
    ['alice\t', /control characters/],
    ['#alice', /comment/],
    ['x'.repeat(256), /longer than 255/],
  ];
  for (const [user, re] of bad) {
    assert.throws(() => validateUserName(user), re, JSON.stringify(user));
    await assert.rejects(setPassword(file, user, 'pw'), re, JSON.stringify(user));
  }
  validateUserName('alice@example.com');
  validateUserName('user with space');

  await assert.rejects(setPassword(file, 'alice', ''), /password must not be empty/);
  await assert.rejects(setPassword(file, 'alice', 'a\u0000b'), /NUL/);
  await assert.rejects(setPassword(file, 'alice', 'é'.repeat(37)), /74 bytes long; bcrypt only uses the first 72/);
  await assert.rejects(setPassword(file, 'alice', 'pw', { cost: 3 }), /cost must be an integer from 4 to 17/);
  await assert.rejects(setPassword(file, 'alice', 'pw', { cost: 18 }), /cost must be an integer from 4 to 17/);
  assert.deepEqual(await readdir(dir), [], 'nothing was created');
});

test('setPassword errors name the problem when the directory is missing or the path is a directory', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(setPassword(join(dir, 'no', 'such', 'htpasswd'), 'a', 'pw', { cost: 4 }), /directory .* does not exist/);
  await mkdir(join(dir, 'adir'));
  await assert.rejects(setPassword(join(dir, 'adir'), 'a', 'pw', { cost: 4 }), /is a directory/);
});

test('removeUser removes only that user; absent users and files are a no-op', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'htpasswd');
  htpasswd('-cbB', file, 'alice', 'alice-pw');
  htpasswd('-bm', file, 'bob', 'bob-pw');
  assert.equal(await removeUser(file, 'alice'), true);
  assert.deepEqual([...parseHtpasswd(await readFile(file, 'utf8')).entries.keys()], ['bob']);
  assert.equal(htpasswdVerifies(file, 'bob', 'bob-pw'), true);
  assert.equal(await removeUser(file, 'alice'), false);

  const missing = join(dir, 'missing');
  assert.equal(await removeUser(missing, 'alice'), false);
  await assert.rejects(stat(missing), { code: 'ENOENT' });
});
