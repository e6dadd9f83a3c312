// Authentication: htpasswd files written by the real `htpasswd` (bcrypt -B,
// apr1 -m, SHA -s) authenticate over real curl; wrong or missing credentials are 401 JSON with
// WWW-Authenticate; health checks need none; the caller is ARMHOOK_USER and the record's caller;
// the file is re-read when it changes; a non-loopback listen without auth refuses to start.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  assertJsonError,
  assertNothingRan,
  curl,
  curlResponse,
  doneRecord,
  fetchText,
  listJobs,
  markerLine,
  parseSse,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

const USERS = {
  bcrypt: { user: 'alice', password: 'bcrypt-Pa55!word', flag: '-B', prefix: '$2y$' },
  apr1: { user: 'bob', password: 'apr1 pass with spaces', flag: '-m', prefix: '$apr1$' },
  sha: { user: 'carol', password: 'sha:colon:pass', flag: '-s', prefix: '{SHA}' },
} as const;

let dir: string;
let htpasswdFile: string;
let server: TestServer;

function htpasswd(...args: string[]): void {
  execFileSync('htpasswd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

const admin = (): string => `${USERS.bcrypt.user}:${USERS.bcrypt.password}`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'armhook-auth-e2e-'));
  htpasswdFile = join(dir, 'htpasswd');
  htpasswd('-cb', USERS.bcrypt.flag, htpasswdFile, USERS.bcrypt.user, USERS.bcrypt.password);
  htpasswd('-b', USERS.apr1.flag, htpasswdFile, USERS.apr1.user, USERS.apr1.password);
  htpasswd('-b', USERS.sha.flag, htpasswdFile, USERS.sha.user, USERS.sha.password);
  server = await startServer({
    config: { htpasswd: htpasswdFile },
    scripts: {
      'whoami.sh': '#!/bin/sh\necho "user=$ARMHOOK_USER"\n',
      'guarded.sh': `#!/bin/sh\n${markerLine('guarded')}\necho ran\n`,
    },
  });
});

after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

test('the htpasswd file holds the three hash forms htpasswd writes', async () => {
  const text = await readFile(htpasswdFile, 'utf8');
  for (const { user, prefix } of Object.values(USERS)) assert.ok(text.includes(`${user}:${prefix}`), `${user} has a ${prefix} hash`);
});

for (const [kind, { user, password }] of Object.entries(USERS)) {
  test(`a user with a ${kind} hash (htpasswd ${USERS[kind as keyof typeof USERS].flag}) authenticates with curl --user; ARMHOOK_USER and caller are the user`, async () => {
    const result = await curl(server, ['--user', `${user}:${password}`, '-XPOST', `${server.url}/whoami`]);
    assert.equal(result.code, 0, result.stderr);
    const { events } = parseSse(result.stdout);
    const record = doneRecord(events);
    assert.equal(record.status, 'succeeded');
    assert.equal(record.caller, user);
    assert.ok(
      events.some((e) => e.event === 'message' && e.data === `user=${user}`),
      result.stdout,
    );
    const stored = await fetchText(server, `/jobs/${record.id}`, { auth: `${user}:${password}` });
    assert.equal(stored.json().caller, user);
    assert.ok(!server.logs.text().includes(password), 'passwords are never logged');
  });
}

test('a wrong password is a 401 JSON error with WWW-Authenticate, and nothing runs', async () => {
  const before = (await listJobs(server, { auth: admin() })).length;
  const res = await curlResponse(server, ['--user', `${USERS.bcrypt.user}:wrong-password`, '-XPOST', `${server.url}/guarded`]);
  assertJsonError(res, 401);
  assert.match(String(res.headers['www-authenticate'] ?? ''), /^Basic realm=/);
  await assertNothingRan(server, 'guarded', before, admin());
});

test('each hash form refuses a wrong password', async () => {
  for (const { user, password } of Object.values(USERS)) {
    const res = await curlResponse(server, ['--user', `${user}:${password}x`, `${server.url}/hooks`]);
    assertJsonError(res, 401);
  }
});

test('an unknown user gets the same 401 as a wrong password', async () => {
  const wrong = await curlResponse(server, ['--user', `${USERS.bcrypt.user}:nope`, `${server.url}/hooks`]);
  const unknown = await curlResponse(server, ['--user', 'mallory:nope', `${server.url}/hooks`]);
  assertJsonError(unknown, 401);
  assert.equal(unknown.body, wrong.body, 'the answer does not reveal whether the user exists');
  assert.equal(unknown.headers['www-authenticate'], wrong.headers['www-authenticate']);
});

test('no credentials is a 401 JSON error with WWW-Authenticate, and nothing runs', async () => {
  const before = (await listJobs(server, { auth: admin() })).length;
  const res = await curlResponse(server, ['-XPOST', `${server.url}/guarded`]);
  assertJsonError(res, 401);
  assert.match(String(res.headers['www-authenticate'] ?? ''), /^Basic/);
  await assertNothingRan(server, 'guarded', before, admin());
});

test('malformed or non-basic Authorization headers are 401 JSON errors', async () => {
  for (const header of [
    'Basic !!!not-base64',
    'Basic ',
    `Basic ${Buffer.from('no-colon').toString('base64')}`,
    'Bearer abc.def.ghi',
    'Digest username="alice"',
  ]) {
    const res = await curlResponse(server, ['-H', `Authorization: ${header}`, '-XPOST', `${server.url}/guarded`]);
    assertJsonError(res, 401);
  }
  assert.equal((await listJobs(server, { auth: admin() })).filter((j) => j.hook === 'guarded').length, 0);
});

test('everything but the health checks needs credentials: catalog, jobs, descriptions, metrics', async () => {
  for (const path of ['/hooks', '/jobs', '/whoami', '/metrics', '/', '/no/such/hook']) {
    const res = await curlResponse(server, [`${server.url}${path}`]);
    assertJsonError(res, 401);
  }
});

test('/healthz and /readyz answer without credentials and reveal only status and reasons', async () => {
  const health = await curlResponse(server, [`${server.url}/healthz`]);
  assert.equal(health.status, 200);
  assert.equal(health.json().status, 'ok');
  const ready = await curlResponse(server, [`${server.url}/readyz`]);
  assert.ok(ready.status === 200 || ready.status === 503, `readyz answered ${ready.status}`);
  const body = ready.json();
  assert.equal(typeof body.status, 'string');
  for (const key of Object.keys(body)) assert.ok(['status', 'reasons'].includes(key), `readyz reveals only status and reasons, not ${key}`);
});

test('a cross-site POST is refused even with valid credentials', async () => {
  const before = (await listJobs(server, { auth: admin() })).length;
  const res = await curlResponse(server, ['--user', admin(), '-H', 'Origin: https://evil.example', '-XPOST', `${server.url}/guarded`]);
  assertJsonError(res, 403);
  await assertNothingRan(server, 'guarded', before, admin());
});

test('a user added to the file while the server runs can log in at once; a removed one cannot', async () => {
  const res0 = await curlResponse(server, ['--user', 'dave:dave-password', `${server.url}/hooks`]);
  assertJsonError(res0, 401);
  htpasswd('-bB', htpasswdFile, 'dave', 'dave-password');
  const res1 = await curlResponse(server, ['--user', 'dave:dave-password', `${server.url}/hooks`]);
  assert.equal(res1.status, 200, res1.body);

  htpasswd('-D', htpasswdFile, 'dave');
  const res2 = await curlResponse(server, ['--user', 'dave:dave-password', `${server.url}/hooks`]);
  assertJsonError(res2, 401);
});

test('a changed password takes effect at once (the old one is refused even though it was just verified)', async () => {
  const user = USERS.apr1.user;
  assert.equal((await curlResponse(server, ['--user', `${user}:${USERS.apr1.password}`, `${server.url}/hooks`])).status, 200);
  htpasswd('-bm', htpasswdFile, user, 'a-new-password');
  try {
    assertJsonError(await curlResponse(server, ['--user', `${user}:${USERS.apr1.password}`, `${server.url}/hooks`]), 401);
    assert.equal((await curlResponse(server, ['--user', `${user}:a-new-password`, `${server.url}/hooks`])).status, 200);
  } finally {
    htpasswd('-bm', htpasswdFile, user, USERS.apr1.password);
  }
});

async function refusedStart(listen: { host: string; port: number }): Promise<Error> {
  const root = await mkdtemp(join(tmpdir(), 'armhook-noauth-'));
  try {
    let started: TestServer | undefined;
    try {
      started = await startServer({ root, config: { listen } });
    } catch (err) {
      return err as Error;
    }
    await started.close();
    assert.fail(`the server started on ${listen.host} without authentication`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

test('listening on 0.0.0.0 without authentication refuses to start, saying how to add a user', async () => {
  const err = await refusedStart({ host: '0.0.0.0', port: 0 });
  assert.match(err.message, /armhook passwd/);
});

test('listening on :: without authentication refuses to start too', async () => {
  const err = await refusedStart({ host: '::', port: 0 });
  assert.match(err.message, /armhook passwd/);
});

test('listening on 0.0.0.0 with an htpasswd file starts, and still requires credentials', async () => {
  const open = await startServer({
    config: { listen: { host: '0.0.0.0', port: 0 }, htpasswd: htpasswdFile },
    scripts: { 'whoami.sh': '#!/bin/sh\necho "user=$ARMHOOK_USER"\n' },
  });
  try {
    assertJsonError(await curlResponse(open, ['-XPOST', `${open.url}/whoami`]), 401);
    const result = await curl(open, ['--user', admin(), '-XPOST', `${open.url}/whoami`]);
    const { events } = parseSse(result.stdout);
    assert.equal(doneRecord(events).caller, USERS.bcrypt.user);
  } finally {
    await open.close();
  }
});
