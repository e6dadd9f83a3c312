// Access file parsing and matching, table-driven.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AccessFileError, compileGlob, parseAccessFile, signatureWarnings } from '../../server/access/index.ts';

test('hook globs: * is one segment (or part of one), ** one or more segments', () => {
  const cases: Array<[string, string, boolean]> = [
    ['vm/*', 'vm/create', true],
    ['vm/*', 'vm/a/b', false],
    ['vm/*', 'vm', false],
    ['vm/**', 'vm/a/b', true],
    ['vm/**', 'vm/create', true],
    ['**', 'anything/at/all', true],
    ['azure/groups/*', 'azure/groups/create', true],
    ['*/deploy', 'ops/deploy', true],
    ['ops/dep*', 'ops/deploy', true],
    ['ops/dep*', 'ops/undeploy', false],
    ['a.b/c', 'aXb/c', false],
  ];
  for (const [glob, path, expected] of cases) assert.equal(compileGlob(glob).test(path), expected, `${glob} vs ${path}`);
});

test('rules add up: run globs join, the widest job scope wins, * names every caller; a leading slash is allowed', () => {
  const policy = parseAccessFile(
    JSON.stringify({
      rules: [
        { callers: ['api'], run: ['/vm/*'], jobs: 'own' },
        { callers: ['api', 'ops'], run: ['demo/**'], jobs: 'none' },
        { callers: ['ops'], jobs: 'all' },
        { callers: ['*'], run: ['public/hello'] },
      ],
    }),
    'access.json',
  );
  const api = policy.forCaller('api');
  assert.equal(api.jobs, 'own');
  assert.ok(api.mayRun('vm/create') && api.mayRun('demo/a/b') && api.mayRun('public/hello'));
  assert.ok(!api.mayRun('ops/deploy'));
  assert.ok(api.maySee('api') && !api.maySee('ops'));
  const ops = policy.forCaller('ops');
  assert.equal(ops.jobs, 'all');
  assert.ok(!ops.mayRun('vm/create') && ops.mayRun('demo/x') && ops.maySee('api'));
  const stranger = policy.forCaller('entra:00000000-0000-0000-0000-000000000001');
  assert.equal(stranger.jobs, 'none');
  assert.ok(stranger.mayRun('public/hello') && !stranger.mayRun('vm/create'));
});

test('every problem is named at once', () => {
  const text = JSON.stringify({
    rules: [{ callers: ['has space'], run: ['vm/**x'], jobs: 'some' }, 'nope'],
    signatures: { 'bad name!': { scheme: 'md5', secretFile: 'relative', hooks: [] } },
  });
  assert.throws(
    () => parseAccessFile(text, 'f.json'),
    (err: unknown) => {
      assert.ok(err instanceof AccessFileError);
      const all = err.problems.join('\n');
      for (const p of [
        '"has space" is not a caller name',
        'segment "**x"',
        'rules[0].jobs',
        'rules[1] must be an object',
        'signatures.bad name!: the name',
        'scheme must be "github" or "hmac"',
        'secretFile must be an absolute path',
        'hooks must be a non-empty list',
      ]) {
        assert.ok(all.includes(p), `${p} in\n${all}`);
      }
      return true;
    },
  );
  assert.throws(() => parseAccessFile('{', 'f.json'), /not valid JSON/);
  assert.throws(() => parseAccessFile('[]', 'f.json'), /must be a JSON object/);
});

test('entra: object ids match whatever their case in the file (callers are named in lower case, as Entra writes them)', () => {
  const oid = '3F0C2B6A-9D41-4E8B-A0C7-1B2D3E4F5A6B';
  const policy = parseAccessFile(JSON.stringify({ rules: [{ callers: [`entra:${oid}`], run: ['app/deploy'], jobs: 'own' }] }), 'access.json');
  const caller = policy.forCaller(`entra:${oid.toLowerCase()}`);
  assert.ok(caller.mayRun('app/deploy'));
  assert.equal(caller.jobs, 'own');
  assert.ok(!policy.forCaller('entra:00000000-0000-0000-0000-000000000000').mayRun('app/deploy'));
});

test('a GitHub entry that serves several hooks, or two that share a secret, are warned about (a GitHub signature does not cover the URL); hmac entries and one hook per secret are not', () => {
  const policy = parseAccessFile(
    JSON.stringify({
      signatures: {
        many: { scheme: 'github', secretFile: '/s/many', hooks: ['ci/*'] },
        two: { scheme: 'github', secretFile: '/s/two', hooks: ['ci/build', 'ci/test'] },
        one: { scheme: 'github', secretFile: '/s/one', hooks: ['ci/deploy'] },
        copy: { scheme: 'github', secretFile: '/s/copy', hooks: ['ci/release'] },
        signer: { scheme: 'hmac', secretFile: '/s/signer', hooks: ['vm/*'] },
      },
    }),
    'access.json',
  );
  for (const spec of policy.signatures) spec.secret = Buffer.from(spec.name === 'copy' ? 'one' : spec.name);
  const warnings = signatureWarnings(policy);
  assert.equal(warnings.length, 3, warnings.join('\n'));
  assert.match(warnings[0] ?? '', /^signatures\.many \(github\) serves several hooks \(ci\/\*\).*its own entry and secret$/);
  assert.match(warnings[1] ?? '', /^signatures\.two \(github\) serves several hooks \(ci\/build, ci\/test\)/);
  assert.match(warnings[2] ?? '', /^signatures\.one and signatures\.copy \(github\) share a secret/);
  assert.ok(!warnings.join('\n').includes('signer'));
});
