import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import bcrypt from 'bcryptjs';
import { hashKind, parseHtpasswd, unsupportedHashReason, verifyPassword } from '../../server/auth/htpasswd.ts';
import { htpasswd, tempDir } from './helpers.ts';

/** One hash from the real htpasswd, via -n (print, don't touch a file). */
function realHash(flag: string, user: string, password: string): string {
  const out = htpasswd(`-nb${flag}`, user, password).trim();
  const parsed = parseHtpasswd(out);
  const entry = parsed.entries.get(user);
  assert.ok(entry, `htpasswd -n${flag} printed an entry for ${user}`);
  return entry.hash;
}

const FORMS = [
  { flag: 'B', kind: 'bcrypt', prefix: '$2y$' },
  { flag: 'm', kind: 'apr1', prefix: '$apr1$' },
  { flag: 's', kind: 'sha1', prefix: '{SHA}' },
] as const;

for (const { flag, kind, prefix } of FORMS) {
  test(`htpasswd -${flag} file (${kind}): right password verifies, wrong one does not`, async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'htpasswd');
    htpasswd(`-cb${flag}`, file, 'alice', 'correct horse');
    htpasswd(`-b${flag}`, file, 'bob', 'battery staple');
    const { entries, warnings } = parseHtpasswd(await readFile(file, 'utf8'));
    assert.deepEqual(warnings, []);
    assert.deepEqual([...entries.keys()], ['alice', 'bob']);
    const alice = entries.get('alice')!.hash;
    const bob = entries.get('bob')!.hash;
    assert.ok(alice.startsWith(prefix), `${kind} hash starts with ${prefix}`);
    assert.equal(hashKind(alice), kind);
    assert.equal(unsupportedHashReason('alice', alice), undefined);

    assert.equal(verifyPassword('correct horse', alice), true);
    assert.equal(verifyPassword('battery staple', bob), true);
    assert.equal(verifyPassword('battery staple', alice), false);
    assert.equal(verifyPassword('correct horse ', alice), false);
    assert.equal(verifyPassword('', alice), false);
  });

  test(`htpasswd -${flag} (${kind}): non-ASCII passwords are hashed as UTF-8 like htpasswd does`, async () => {
    const password = 'pässwörd-日本-🔑';
    const hash = realHash(flag, 'u', password);
    assert.equal(verifyPassword(password, hash), true);
    assert.equal(verifyPassword('passwort-日本-🔑', hash), false);
  });
}

test('bcrypt: $2a$, $2b$ and $2y$ prefixes all verify', async () => {
  const b = await bcrypt.hash('s3cret', 4); // bcryptjs writes $2b$
  assert.ok(b.startsWith('$2b$'));
  for (const prefix of ['$2a$', '$2b$', '$2y$']) {
    const hash = prefix + b.slice(4);
    assert.equal(hashKind(hash), 'bcrypt');
    assert.equal(verifyPassword('s3cret', hash), true, prefix);
    assert.equal(verifyPassword('s3cret!', hash), false, prefix);
  }
});

test('glibc $1$ MD5-crypt verifies too', async () => {
  // openssl passwd -1 -salt abcdefgh password
  const hash = '$1$abcdefgh$G//4keteveJp0qb8z2DxG/';
  assert.equal(hashKind(hash), 'md5-crypt');
  assert.equal(verifyPassword('password', hash), true);
  assert.equal(verifyPassword('Password', hash), false);
});

test('unsupported forms from htpasswd (-d, -p, -2, -5) never verify and come with a reason', async () => {
  const cases = [
    { flag: 'd', kind: 'des-crypt', label: 'DES crypt' },
    { flag: 'p', kind: 'unknown', label: 'plaintext' },
    { flag: '2', kind: 'sha256-crypt', label: '$5$' },
    { flag: '5', kind: 'sha512-crypt', label: '$6$' },
  ] as const;
  for (const { flag, kind, label } of cases) {
    const hash = realHash(flag, 'carol', 'pw12345');
    assert.equal(hashKind(hash), kind, `-${flag}`);
    assert.equal(verifyPassword('pw12345', hash), false, `-${flag} must not verify`);
    const reason = unsupportedHashReason('carol', hash, '/etc/armhook/htpasswd');
    assert.ok(reason, `-${flag} has a reason`);
    assert.match(reason, /user "carol" has an unsupported hash type/);
    assert.ok(reason.includes(label), `reason names the type: ${reason}`);
    assert.ok(reason.includes('`armhook passwd /etc/armhook/htpasswd carol`'), reason);
    assert.ok(!reason.includes(hash), 'reason never contains the hash');
    assert.ok(!reason.includes('pw12345'), 'reason never contains the password');
  }
  assert.ok(unsupportedHashReason('x', '$2x$10$' + 'a'.repeat(53))?.includes('$2x$'));
});

test('malformed hashes resolve false instead of throwing', async () => {
  for (const hash of [
    '',
    '$2y$10$short',
    '$2y$99$' + 'a'.repeat(53),
    '$apr1$$',
    '$apr1$toolongsalt$abcdefghijklmnopqrstuv',
    '{SHA}',
    '{SHA}not base64 at all!!',
    '{SHA}' + 'A'.repeat(28),
    '$5$rounds=5000$salt$hash',
    'plain-text-password',
  ]) {
    assert.equal(verifyPassword('plain-text-password', hash), false, JSON.stringify(hash));
  }
});

test('parse: comments, blank lines, CRLF, whitespace, extra fields, BOM', () => {
  const text =
    '\uFEFF# a comment\r\n' +
    '\r\n' +
    '  alice:$apr1$abc$0123456789012345678901  \r\n' +
    '\tbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=:extra:fields\n' +
    'user with space:$2y$05$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n';
  const { entries, warnings } = parseHtpasswd(text);
  assert.deepEqual(warnings, []);
  assert.deepEqual([...entries.keys()], ['alice', 'bob', 'user with space']);
  assert.equal(entries.get('alice')!.hash, '$apr1$abc$0123456789012345678901');
  assert.equal(entries.get('alice')!.line, 3);
  assert.equal(entries.get('bob')!.hash, '{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=');
});

test('parse: malformed and duplicate lines are skipped with warnings that carry no line content', () => {
  const secretish = 'hunter2-plaintext-in-the-wrong-place';
  const text = [
    'alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=',
    secretish, // no colon
    ':{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', // empty user
    'dave:', // empty hash
    'alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=', // duplicate: first wins
    'erin:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=',
  ].join('\n');
  const { entries, warnings } = parseHtpasswd(text);
  assert.deepEqual([...entries.keys()], ['alice', 'erin']);
  assert.equal(entries.get('alice')!.hash, '{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=');
  assert.deepEqual(
    warnings.map((w) => w.line),
    [2, 3, 4, 5],
  );
  assert.match(warnings[0]!.message, /line 2 skipped: no ":"/);
  assert.match(warnings[3]!.message, /user "alice" already defined on line 1/);
  for (const w of warnings) {
    assert.ok(!w.message.includes(secretish));
    assert.ok(!w.message.includes('{SHA}'));
  }
});

test('parse: empty and garbage input never throws', () => {
  assert.equal(parseHtpasswd('').entries.size, 0);
  assert.equal(parseHtpasswd('\n\n\n').entries.size, 0);
  const garbage = parseHtpasswd('\u0000\u0001:x\n::::\n\uFFFF');
  assert.equal(garbage.entries.size, 1); // "\u0000\u0001" is a (useless) user name
  assert.equal(garbage.warnings.length, 2);
});
