// Idempotency-Key: a repeat of the same run by the same caller gets the job it already started
// (202 repeats its Location, SSE replays and follows it, JSON waits for it); the same key with
// other parameters or body is 422; concurrent duplicates make one job; keys survive a restart.
// A signed delivery is keyed on what its signature covers (a GitHub body, an hmac signature), never
// on a header a replay could change. Fingerprints are HMACs under the installation's key file.
// Each script appends a line to a file per run, so the number of lines is the number of runs.
import assert from 'node:assert/strict';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DatabaseSync } from 'node:sqlite';
import { hashPassword } from '../../server/auth/passwd.ts';
import { DATABASE_FILE } from '../../server/jobs/index.ts';
import { githubDelivery, githubPush, hmacSignature } from '../fakes/senders.ts';
import { assertJsonError, doneRecord, fetchText, parseSse, startServer, type StartOptions, type TestServer } from '../helpers/server.ts';

const SECRET = 'idempotent-github-secret';
const HMAC_SECRET = 'idempotent-hmac-secret';
let dir: string;
let options: StartOptions;
let server: TestServer;

const runs = (name: string): number => {
  const file = join(server.markerDir, `runs-${name}`);
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'armhook-idempotency-'));
  const htpasswd = join(dir, 'htpasswd');
  await writeFile(htpasswd, `api:${await hashPassword('api-pw', 4)}\nops:${await hashPassword('ops-pw', 4)}\n`);
  const secretFile = join(dir, 'github.secret');
  await writeFile(secretFile, SECRET, { mode: 0o600 });
  const hmacFile = join(dir, 'hmac.secret');
  await writeFile(hmacFile, HMAC_SECRET, { mode: 0o600 });
  const access = join(dir, 'access.json');
  await writeFile(
    access,
    JSON.stringify({
      rules: [{ callers: ['api', 'ops'], run: ['**'], jobs: 'all' }],
      signatures: { github: { scheme: 'github', secretFile, hooks: ['ci/github'] }, deployer: { scheme: 'hmac', secretFile: hmacFile, hooks: ['signed/*'] } },
    }),
  );
  options = {
    root: join(dir, 'root'),
    config: { htpasswd, access },
    scripts: {
      'signed/run.sh': '#!/bin/sh\necho "$ARMHOOK_JOB_ID" >> "$ARMHOOK_TEST_MARKERS/runs-signed"\n',
      'secret.sh': '#!/bin/sh\n# @param pw required secret\necho "$ARMHOOK_JOB_ID" >> "$ARMHOOK_TEST_MARKERS/runs-secret"\n',
      'deploy.sh': '#!/bin/sh\necho "$ARMHOOK_JOB_ID" >> "$ARMHOOK_TEST_MARKERS/runs-$name"\necho "deployed $name"\n',
      'ci/github.sh':
        '#!/bin/sh\n# @respond async\n# @param delivery required from=header:X-GitHub-Delivery\n# @param ref from=/ref\necho "$ARMHOOK_JOB_ID" >> "$ARMHOOK_TEST_MARKERS/runs-$delivery"\necho "ref=$ref"\n',
    },
  };
  server = await startServer(options);
});

after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const run = (path: string, key: string, headers: Record<string, string> = {}, auth = 'api:api-pw', body?: string): ReturnType<typeof fetchText> =>
  fetchText(server, path, { method: 'POST', auth, headers: { 'idempotency-key': key, ...headers }, ...(body !== undefined ? { body } : {}) });

test('a sequential repeat gets the same job: 202 repeats its Location, SSE replays it to the end, JSON waits for it; the script ran once', async () => {
  const first = await run('/deploy?name=seq', 'key-seq', { prefer: 'respond-async' });
  assert.equal(first.status, 202, first.body);
  const id = String(first.headers['armhook-job-id']);
  const again = await run('/deploy?name=seq', 'key-seq', { prefer: 'respond-async' });
  assert.equal(again.status, 202);
  assert.equal(again.headers['armhook-job-id'], id);
  assert.equal(again.headers.location, `/jobs/${id}`);
  const sse = await run('/deploy?name=seq', 'key-seq');
  assert.equal(sse.headers['armhook-job-id'], id);
  const { events } = parseSse(sse.body);
  assert.equal(doneRecord(events).id, id);
  assert.ok(
    events.some((e) => e.data === 'deployed seq'),
    sse.body,
  );
  const asJson = await run('/deploy?name=seq', 'key-seq', { accept: 'application/json' });
  assert.equal(asJson.status, 200);
  assert.equal(asJson.json().id, id);
  assert.equal(asJson.json().output, 'deployed seq\n');
  assert.equal(runs('seq'), 1);
});

test('10 concurrent duplicates make one job', async () => {
  const answers = await Promise.all(Array.from({ length: 10 }, () => run('/deploy?name=burst', 'key-burst', { accept: 'application/json' })));
  const ids = new Set(answers.map((a) => a.headers['armhook-job-id']));
  assert.equal(ids.size, 1, [...ids].join(' '));
  for (const a of answers) assert.equal(a.status, 200, a.body);
  assert.equal(runs('burst'), 1);
});

test('the same key with other parameters or another body is 422, and runs nothing', async () => {
  await run('/deploy?name=other', 'key-other', { accept: 'application/json' });
  assertJsonError(await run('/deploy?name=other2', 'key-other', { accept: 'application/json' }), 422, 'idempotency_key_reused');
  assertJsonError(
    await run('/deploy?name=other', 'key-other', { accept: 'application/json', 'content-type': 'text/plain' }, 'api:api-pw', 'a body'),
    422,
    'idempotency_key_reused',
  );
  assert.equal(runs('other'), 1);
  assert.equal(runs('other2'), 0);
});

test("keys are per caller: another caller's same key starts its own job", async () => {
  const a = await run('/deploy?name=percaller', 'shared-key', { accept: 'application/json' });
  const b = await run('/deploy?name=percaller', 'shared-key', { accept: 'application/json' }, 'ops:ops-pw');
  assert.notEqual(a.headers['armhook-job-id'], b.headers['armhook-job-id']);
  assert.equal(runs('percaller'), 2);
});

test('a key that is empty, too long or not printable is 400 and runs nothing', async () => {
  for (const key of ['x'.repeat(256), 'tab\there', 'ünï']) {
    assertJsonError(await run('/deploy?name=badkey', key, { accept: 'application/json' }), 400, 'bad_idempotency_key');
  }
  assert.equal(runs('badkey'), 0);
});

test('a GitHub push delivered twice with the same delivery id runs once; both answers are 202 with the same job', async () => {
  const push = githubDelivery('push', githubPush(2), SECRET);
  const first = await fetchText(server, '/ci/github', { method: 'POST', body: push.body, headers: push.headers });
  const second = await fetchText(server, '/ci/github', { method: 'POST', body: push.body, headers: push.headers });
  assert.equal(first.status, 202, first.body);
  assert.equal(second.status, 202, second.body);
  assert.equal(second.headers['armhook-job-id'], first.headers['armhook-job-id']);
  const id = String(first.headers['armhook-job-id']);
  await fetchText(server, `/jobs/${id}/events`, { auth: 'api:api-pw' });
  assert.equal((await fetchText(server, `/jobs/${id}`, { auth: 'api:api-pw' })).json().params.ref, 'refs/heads/main');
  assert.equal(runs(push.delivery), 1);
});

test('a captured GitHub delivery sent again with a new X-GitHub-Delivery, or with an Idempotency-Key, gets the first job; it runs once', async () => {
  const push = githubDelivery('push', githubPush(3), SECRET);
  const first = await fetchText(server, '/ci/github', { method: 'POST', body: push.body, headers: push.headers });
  assert.equal(first.status, 202, first.body);
  const replays = [
    { ...push.headers, 'x-github-delivery': randomUUID() },
    { ...push.headers, 'x-github-delivery': randomUUID(), 'idempotency-key': 'a-key-of-my-choosing' },
  ];
  for (const headers of replays) {
    const replay = await fetchText(server, '/ci/github', { method: 'POST', body: push.body, headers });
    assert.equal(replay.status, 202, replay.body);
    assert.equal(replay.headers['armhook-job-id'], first.headers['armhook-job-id']);
    assert.equal(runs(String(headers['x-github-delivery'])), 0, 'the replay never ran');
  }
  await fetchText(server, `/jobs/${String(first.headers['armhook-job-id'])}/events`, { auth: 'api:api-pw' });
  assert.equal(runs(push.delivery), 1);
});

test('fingerprints are HMACs under the 0600 key file beside the database: not the plain SHA-256 of the request (secret values are not guessable from a copy of the database); retries still match', async () => {
  const first = await run('/secret?pw=hunter22', 'key-secret', { accept: 'application/json' });
  assert.equal(first.status, 200, first.body);
  const again = await run('/secret?pw=hunter22', 'key-secret', { accept: 'application/json' });
  assert.equal(again.headers['armhook-job-id'], first.headers['armhook-job-id']);
  assertJsonError(await run('/secret?pw=hunter23', 'key-secret', { accept: 'application/json' }), 422, 'idempotency_key_reused');
  assert.equal(runs('secret'), 1);

  const keyFile = join(server.dataDir, 'idempotency.key');
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  const db = new DatabaseSync(join(server.dataDir, DATABASE_FILE), { readOnly: true });
  const row = db.prepare("SELECT fingerprint FROM idempotency_keys WHERE key = 'key-secret'").get();
  db.close();
  const input = JSON.stringify(['secret', 'POST', { pw: '***' }, ['hunter22']]);
  const plain = createHash('sha256').update(input).update('\n').digest('base64url');
  const keyed = createHmac('sha256', Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex'))
    .update(input)
    .update('\n')
    .digest('base64url');
  assert.notEqual(row?.fingerprint, plain, 'not an unsalted hash of the request');
  assert.equal(row?.fingerprint, keyed);
});

test('keys survive a restart: the repeat after it gets the job from before', async () => {
  const first = await run('/deploy?name=restart', 'key-restart', { accept: 'application/json' });
  assert.equal(first.status, 200);
  await server.close();
  server = await startServer(options);
  const again = await run('/deploy?name=restart', 'key-restart', { prefer: 'respond-async' });
  assert.equal(again.status, 202, again.body);
  assert.equal(again.headers['armhook-job-id'], first.headers['armhook-job-id']);
  assert.equal(runs('restart'), 1);
});

test('an hmac signature replayed after a restart (the replay guard forgot it) gets the job it started, not a second run', async () => {
  const header = hmacSignature(HMAC_SECRET, 'POST', '/signed/run', '');
  const first = await fetchText(server, '/signed/run', { method: 'POST', headers: { 'armhook-signature': header, accept: 'application/json' } });
  assert.equal(first.status, 200, first.body);
  assertJsonError(
    await fetchText(server, '/signed/run', { method: 'POST', headers: { 'armhook-signature': header, accept: 'application/json' } }),
    401,
    'unauthorized',
  );
  await server.close();
  server = await startServer(options);
  // A decoy v1 in front of the real one was a key of its own: a second run.
  const v1 = header.slice(header.indexOf('v1='));
  assertJsonError(
    await fetchText(server, '/signed/run', { method: 'POST', headers: { 'armhook-signature': `${header.split(',')[0]},v1=${'a'.repeat(64)},${v1}` } }),
    401,
    'unauthorized',
  );
  // An Idempotency-Key of the replayer's choosing is ignored: the signature keys the run.
  const replay = await fetchText(server, '/signed/run', {
    method: 'POST',
    headers: { 'armhook-signature': header, accept: 'application/json', 'idempotency-key': 'a-new-key' },
  });
  assert.equal(replay.status, 200, replay.body);
  assert.equal(replay.headers['armhook-job-id'], first.headers['armhook-job-id']);
  assert.equal(runs('signed'), 1);
});
