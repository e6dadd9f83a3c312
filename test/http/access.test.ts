// The access file over real sockets: who may run what (403, nothing runs), whose jobs a caller
// sees under own / all / none (read, tail, log, cancel; another caller's job is 404), list and
// catalog filtering, typed handlers, metrics, reload on change and a broken edit.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { hashPassword } from '../../server/auth/passwd.ts';
import { runCheck } from '../helpers/process.ts';
import { assertJsonError, fetchText, markerExists, open, startServer, streamReader, type TestServer } from '../helpers/server.ts';

const USERS = ['alice', 'bob', 'ops', 'viewer', 'nobody'] as const;
type User = (typeof USERS)[number];
const auth = (user: User): string => `${user}:${user}-pw`;

const RULES = {
  rules: [
    { callers: ['alice', 'bob'], run: ['demo/*'], jobs: 'own' },
    { callers: ['ops'], run: ['**'], jobs: 'all' },
    { callers: ['viewer'], run: ['demo/echo'], jobs: 'none' },
  ],
};

let dir: string;
let accessFile: string;
let gate: string;
let server: TestServer;
let aliceJob: string;

async function writeRules(rules: unknown): Promise<void> {
  await writeFile(accessFile, typeof rules === 'string' ? rules : JSON.stringify(rules));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'armhook-access-'));
  const htpasswd = join(dir, 'htpasswd');
  const lines = await Promise.all(USERS.map(async (u) => `${u}:${await hashPassword(`${u}-pw`, 4)}`));
  await writeFile(htpasswd, `${lines.join('\n')}\n`);
  accessFile = join(dir, 'access.json');
  gate = join(dir, 'gate');
  await writeRules(RULES);
  server = await startServer({
    config: { htpasswd, access: accessFile },
    scripts: {
      'demo/echo.sh': '#!/bin/sh\ntouch "$ARMHOOK_TEST_MARKERS/echo-$ARMHOOK_USER-$tag"\necho "hello $ARMHOOK_USER"\n',
      // Runs until the gate file exists (bounded), so its job can be tailed and cancelled.
      'demo/wait.sh': `#!/bin/sh\necho waiting\ni=0\nwhile [ ! -e '${gate}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\necho released\n`,
      'ops/deploy.sh': '#!/bin/sh\ntouch "$ARMHOOK_TEST_MARKERS/deploy-$ARMHOOK_USER"\necho deployed\n',
    },
  });
  const started = await fetchText(server, '/demo/wait', { method: 'POST', auth: auth('alice'), headers: { prefer: 'respond-async' } });
  assert.equal(started.status, 202, started.body);
  aliceJob = String(started.headers['armhook-job-id']);
});

after(async () => {
  await writeFile(gate, '');
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

test('a caller runs what its rules allow, and anything else is 403 naming caller and hook, with nothing run', async () => {
  const ran = await fetchText(server, '/demo/echo?tag=a', { method: 'POST', auth: auth('alice'), headers: { accept: 'application/json' } });
  assert.equal(ran.status, 200, ran.body);
  assert.ok(markerExists(server, 'echo-alice-a'));
  for (const [user, path, marker] of [
    ['alice', '/ops/deploy', 'deploy-alice'],
    ['nobody', '/demo/echo?tag=n', 'echo-nobody-n'],
    ['viewer', '/demo/wait', ''],
    ['alice', '/no/such/hook', ''],
  ] as const) {
    const res = await fetchText(server, path, { method: 'POST', auth: auth(user) });
    const body = assertJsonError(res, 403, 'forbidden');
    assert.ok(body.message.includes(user) && body.message.includes(path.split('?')[0] ?? ''), body.message);
    if (marker) assert.ok(!markerExists(server, marker), `${marker} must not run`);
  }
  // Describing a hook is also limited to those who may run it.
  assertJsonError(await fetchText(server, '/ops/deploy', { auth: auth('alice') }), 403, 'forbidden');
  assert.equal((await fetchText(server, '/ops/deploy', { auth: auth('ops') })).status, 200);
});

test('typed handlers are hooks like any other: azure/* needs a rule', async () => {
  assertJsonError(await fetchText(server, '/azure/groups', { auth: auth('alice') }), 403, 'forbidden');
  assertJsonError(await fetchText(server, '/azure/groups/create?name=x', { method: 'POST', auth: auth('bob') }), 403, 'forbidden');
  const ops = await fetchText(server, '/azure/groups', { auth: auth('ops') });
  assert.notEqual(ops.status, 403, ops.body);
});

test('under "own", another caller\'s job is 404 for read, events, log and cancel; the owner and "all" see it; "none" sees nothing', async () => {
  for (const path of [`/jobs/${aliceJob}`, `/jobs/${aliceJob}/log`]) {
    for (const user of ['bob', 'viewer', 'nobody'] as const) assertJsonError(await fetchText(server, path, { auth: auth(user) }), 404, 'unknown_job');
  }
  for (const user of ['alice', 'ops'] as const) assert.equal((await fetchText(server, `/jobs/${aliceJob}`, { auth: auth(user) })).status, 200);
  for (const user of ['bob', 'viewer'] as const) {
    assertJsonError(await fetchText(server, `/jobs/${aliceJob}/events`, { auth: auth(user) }), 404, 'unknown_job');
    assertJsonError(await fetchText(server, `/jobs/${aliceJob}`, { method: 'DELETE', auth: auth(user) }), 404, 'unknown_job');
  }
  // The owner and an "all" caller tail it live (the first line arrives while it still runs).
  for (const user of ['alice', 'ops'] as const) {
    const res = await open(server, `/jobs/${aliceJob}/events`, { auth: auth(user) });
    assert.equal(res.statusCode, 200);
    await streamReader(res).until((text) => text.includes('data: waiting'));
    res.destroy();
  }
  assert.equal((await fetchText(server, `/jobs/${aliceJob}`, { auth: auth('alice') })).json().status, 'running', 'the refused cancels left it running');
});

test('the /jobs list: own jobs only under "own" (another caller\'s name finds nothing), everything under "all", 403 under "none"', async () => {
  await fetchText(server, '/demo/echo?tag=b', { method: 'POST', auth: auth('bob'), headers: { accept: 'application/json' } });
  const list = async (user: User, query = ''): Promise<Array<{ id: string; caller: string }>> => {
    const res = await fetchText(server, `/jobs${query}`, { auth: auth(user) });
    assert.equal(res.status, 200, res.body);
    return res.json().items;
  };
  const alice = await list('alice');
  assert.ok(alice.length >= 2 && alice.every((j) => j.caller === 'alice'), JSON.stringify(alice));
  assert.ok(alice.some((j) => j.id === aliceJob));
  const bob = await list('bob');
  assert.ok(bob.length >= 1 && bob.every((j) => j.caller === 'bob'));
  assert.deepEqual(await list('bob', '?caller=alice'), []);
  const all = await list('ops');
  assert.ok(all.some((j) => j.caller === 'alice') && all.some((j) => j.caller === 'bob'));
  assertJsonError(await fetchText(server, '/jobs', { auth: auth('viewer') }), 403, 'forbidden');
});

test('/hooks and /openapi.json list only what the caller may run', async () => {
  const hooks = async (user: User): Promise<string[]> =>
    (await fetchText(server, '/hooks', { auth: auth(user) }))
      .json()
      .hooks.map((h: { path: string }) => h.path)
      .sort();
  assert.deepEqual(await hooks('alice'), ['/demo/echo', '/demo/wait']);
  assert.deepEqual(await hooks('viewer'), ['/demo/echo']);
  assert.deepEqual(await hooks('nobody'), []);
  const opsHooks = await hooks('ops');
  assert.ok(opsHooks.includes('/ops/deploy') && opsHooks.includes('/azure/groups'), opsHooks.join(' '));
  const paths = Object.keys((await fetchText(server, '/openapi.json', { auth: auth('alice') })).json().paths);
  assert.ok(paths.includes('/demo/echo') && paths.includes('/demo/wait'), paths.join(' '));
  assert.ok(!paths.includes('/ops/deploy') && !paths.some((p) => p.startsWith('/azure/')), paths.join(' '));
});

test('/metrics needs "jobs": "all"', async () => {
  assertJsonError(await fetchText(server, '/metrics', { auth: auth('alice') }), 403, 'forbidden');
  assert.equal((await fetchText(server, '/metrics', { auth: auth('ops') })).status, 200);
});

test('the owner cancels its own job', async () => {
  const res = await fetchText(server, `/jobs/${aliceJob}`, { method: 'DELETE', auth: auth('alice') });
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json().status, 'cancelled');
});

test('an edit is in force for the next request; a broken edit keeps the last good rules and logs why once; a fixed one is in force again', async () => {
  assertJsonError(await fetchText(server, '/ops/deploy', { method: 'POST', auth: auth('bob') }), 403, 'forbidden');
  await writeRules({ rules: [...RULES.rules, { callers: ['bob'], run: ['ops/deploy'], jobs: 'own' }] });
  const granted = await fetchText(server, '/ops/deploy', { method: 'POST', auth: auth('bob'), headers: { accept: 'application/json' } });
  assert.equal(granted.status, 200, granted.body);
  assert.ok(markerExists(server, 'deploy-bob'));
  assert.ok(server.logs.entries().some((l) => /access file .* changed; the new rules are in force/.test(l.msg)));

  await writeRules('{ "rules": [ { "callers": ["bob"], "run": ["ops/deploy"] ');
  for (let i = 0; i < 3; i++) assert.equal((await fetchText(server, '/hooks', { auth: auth('bob') })).json().hooks.length, 3, 'the last good rules stay');
  const errors = server.logs.entries().filter((l) => l.level === 50 && /not valid JSON.*last good rules stay in force/.test(l.msg));
  assert.equal(errors.length, 1, 'logged once');

  await writeRules({ rules: [{ callers: ['bob'], run: ['**/deploy', 'demo/nonexistent'], jobs: 'unknown-scope' }] });
  await fetchText(server, '/hooks', { auth: auth('bob') });
  assert.ok(server.logs.entries().some((l) => l.level === 50 && /rules\[0\]\.jobs must be "own", "all" or "none"/.test(l.msg)));

  await writeRules(RULES);
  assertJsonError(await fetchText(server, '/ops/deploy', { method: 'POST', auth: auth('bob') }), 403, 'forbidden');
});

test('armhook check names every problem of the access file', async () => {
  const bad = join(dir, 'bad-access.json');
  await writeFile(
    bad,
    JSON.stringify({
      rules: [
        { callers: [], run: ['a//b'], jobs: 'mine' },
        { callers: ['x'], run: ['ok/*'], extra: 1 },
      ],
      other: true,
    }),
  );
  const result = await runCheck(dir, {
    ARMHOOK_SCRIPTS_DIR: server.scriptsDir,
    ARMHOOK_TLS_DIR: join(dir, 'tls'),
    ARMHOOK_DATA_DIR: join(dir, 'check-data'),
    ARMHOOK_ACCESS: bad,
    ARMHOOK_IMDS_ENDPOINT: 'http://127.0.0.1:9',
  });
  assert.equal(result.code, 1);
  for (const problem of [
    'unknown key "other"',
    'rules[0].callers must be a non-empty list',
    'segment "" is not a name',
    'rules[0].jobs must be',
    'rules[1]: unknown key "extra"',
  ]) {
    assert.ok(result.stdout.includes(problem), `check names ${problem}:\n${result.stdout}`);
  }
  assert.match(result.stdout, /^FAIL {2}access: /m);
});
