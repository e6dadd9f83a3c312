// Signed webhooks over real sockets: GitHub deliveries (JSON and form-encoded, one over 8 KiB,
// push and ping) to the sample receiver scripts/ci/github.sh, and the hmac scheme built the way
// the README's openssl one-liner builds it. Wrong, missing, stale and replayed signatures, a body
// changed by one byte, a signed hook called with a password only: each is refused and nothing runs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadAccessFile } from '../../server/access/index.ts';
import { hashPassword } from '../../server/auth/passwd.ts';
import { githubDelivery, githubPing, githubPush, hmacSignature } from '../fakes/senders.ts';
import { runCheck } from '../helpers/process.ts';
import { assertJsonError, fetchText, markerExists, readTree, startServer, type TestServer } from '../helpers/server.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const GITHUB_SECRET = 'gh-webhook-secret-7f3a91';
const HMAC_SECRET = 'deployer-secret-c0ffee42';
let dir: string;
let server: TestServer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'armhook-signatures-'));
  const githubSecret = join(dir, 'github.secret');
  const hmacSecret = join(dir, 'deployer.secret');
  await writeFile(githubSecret, `${GITHUB_SECRET}\n`, { mode: 0o600 });
  await writeFile(hmacSecret, HMAC_SECRET, { mode: 0o640 });
  const htpasswd = join(dir, 'htpasswd');
  await writeFile(htpasswd, `api:${await hashPassword('api-pw', 4)}\n`);
  const access = join(dir, 'access.json');
  await writeFile(
    access,
    JSON.stringify({
      rules: [{ callers: ['api'], run: ['**'], jobs: 'all' }],
      signatures: {
        github: { scheme: 'github', secretFile: githubSecret, hooks: ['ci/github'] },
        deployer: { scheme: 'hmac', secretFile: hmacSecret, hooks: ['deploy/*'] },
      },
    }),
  );
  const sample = await readFile(join(ROOT, 'scripts', 'ci', 'github.sh'), 'utf8');
  server = await startServer({
    config: { htpasswd, access },
    scripts: {
      'ci/github.sh': sample.replace('set -eu\n', 'set -eu\ntouch "$ARMHOOK_TEST_MARKERS/gh-$delivery"\n'),
      'deploy/app.sh': '#!/bin/sh\ntouch "$ARMHOOK_TEST_MARKERS/hmac-$tag"\necho "deploying $tag as $ARMHOOK_USER"\ncat\n',
    },
  });
});

after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

async function post(path: string, body: Buffer | string, headers: Record<string, string>, auth?: string): Promise<Awaited<ReturnType<typeof fetchText>>> {
  return fetchText(server, path, { method: 'POST', body, headers, ...(auth ? { auth } : {}) });
}

/** The job's record and output once it has ended (its event stream ends with the job). */
async function jobOutput(id: string): Promise<{ record: Record<string, any>; log: string }> {
  await fetchText(server, `/jobs/${id}/events`, { auth: 'api:api-pw' });
  const res = await fetchText(server, `/jobs/${id}/log`, { auth: 'api:api-pw' });
  const record = (await fetchText(server, `/jobs/${id}`, { auth: 'api:api-pw' })).json();
  return { record, log: res.body };
}

test('a GitHub push (JSON) runs the receiver as signature:github: 202 at once (# @respond async), ref from /ref, event and delivery from headers', async () => {
  const push = githubDelivery('push', githubPush(2), GITHUB_SECRET);
  const res = await post('/ci/github', push.body, push.headers);
  assert.equal(res.status, 202, res.body);
  const id = String(res.headers['armhook-job-id']);
  assert.equal(res.headers.location, `/jobs/${id}`);
  const { record, log } = await jobOutput(id);
  assert.equal(record.status, 'succeeded', log);
  assert.equal(record.caller, 'signature:github');
  assert.deepEqual(record.params, { event: 'push', delivery: push.delivery, ref: 'refs/heads/main' });
  assert.match(log, /ref: refs\/heads\/main/);
  assert.match(log, /pusher: mona <mona@contoso.com>/);
  assert.match(log, /commits: 2/);
  assert.ok(markerExists(server, `gh-${push.delivery}`));
});

test('a form-encoded push over 8 KiB: the payload field is the body (stdin, from=) and is never a parameter', async () => {
  const push = githubDelivery('push', githubPush(40), GITHUB_SECRET, { form: true });
  assert.ok(push.body.length > 8 * 1024, `${push.body.length} bytes`);
  const res = await post('/ci/github', push.body, push.headers);
  assert.equal(res.status, 202, res.body);
  const { record, log } = await jobOutput(String(res.headers['armhook-job-id']));
  assert.equal(record.status, 'succeeded', log);
  assert.equal(record.params.ref, 'refs/heads/main');
  assert.match(log, /commits: 40/);
});

test('a ping (no ref) runs and says so', async () => {
  const ping = githubDelivery('ping', githubPing(), GITHUB_SECRET);
  const res = await post('/ci/github', ping.body, ping.headers);
  assert.equal(res.status, 202, res.body);
  const { record, log } = await jobOutput(String(res.headers['armhook-job-id']));
  assert.equal(record.status, 'succeeded', log);
  assert.match(log, /ping: the webhook is set up/);
});

test('GitHub refusals: wrong, missing and one-byte-changed signatures are 401, a query string 400, a password alone 401; nothing runs', async () => {
  const cases: Array<{
    name: string;
    build: () => { body: Buffer; headers: Record<string, string>; delivery: string };
    path?: string;
    auth?: string;
    status: number;
  }> = [
    { name: 'wrong secret', build: () => githubDelivery('push', githubPush(), 'not-the-secret'), status: 401 },
    {
      name: 'missing signature, password given',
      build: () => {
        const d = githubDelivery('push', githubPush(), GITHUB_SECRET);
        delete d.headers['x-hub-signature-256'];
        return d;
      },
      auth: 'api:api-pw',
      status: 401,
    },
    {
      name: 'body changed by one byte',
      build: () => {
        const d = githubDelivery('push', githubPush(), GITHUB_SECRET);
        const body = Buffer.from(d.body);
        body[body.indexOf('main')] = 'M'.charCodeAt(0);
        return { ...d, body };
      },
      status: 401,
    },
    {
      name: 'sha1 signature only',
      build: () => {
        const d = githubDelivery('push', githubPush(), GITHUB_SECRET);
        delete d.headers['x-hub-signature-256'];
        return d;
      },
      status: 401,
    },
    {
      name: 'valid signature, but a query string',
      build: () => githubDelivery('push', githubPush(), GITHUB_SECRET),
      path: '/ci/github?ref=refs/heads/evil',
      status: 400,
    },
    { name: 'valid signature, wrong password alongside', build: () => githubDelivery('push', githubPush(), GITHUB_SECRET), auth: 'api:wrong', status: 401 },
  ];
  for (const c of cases) {
    const d = c.build();
    const before = (await fetchText(server, '/jobs?limit=500', { auth: 'api:api-pw' })).json().items.length;
    const res = await post(c.path ?? '/ci/github', d.body, d.headers, c.auth);
    assertJsonError(res, c.status);
    assert.ok(!markerExists(server, `gh-${d.delivery}`), `${c.name}: the script must not run`);
    assert.equal((await fetchText(server, '/jobs?limit=500', { auth: 'api:api-pw' })).json().items.length, before, `${c.name}: no job`);
  }
});

/** The README's sender, run by a real shell with openssl and curl. */
function hmacCurl(path: string, body: string, extra: string[] = []): Promise<{ status: number; header: string }> {
  const script = [
    'set -eu',
    't=$(date +%s)',
    'sig=$(printf "%s.%s.%s.%s" "$t" POST "$path" "$body" | openssl dgst -sha256 -hmac "$(cat "$secret_file")" -r | cut -d" " -f1)',
    'header="t=$t,v1=$sig"',
    'code=$(curl -sS -o /dev/null -w "%{http_code}" --cacert "$ca" -H "Armhook-Signature: $header" -H "Content-Type: application/json" -H "Accept: application/json" --data-binary "$body" "$base$path")',
    'echo "$code $header"',
  ].join('\n');
  return new Promise((resolve, reject) => {
    execFile(
      'sh',
      ['-c', script],
      {
        env: {
          PATH: process.env['PATH'] ?? '/usr/bin:/bin',
          path,
          body,
          secret_file: join(dir, 'deployer.secret'),
          ca: server.caPath,
          base: server.url,
          ...Object.fromEntries(extra.map((e) => e.split('=') as [string, string])),
        },
      },
      (err, stdout) => {
        if (err) reject(err instanceof Error ? err : new Error('the script failed'));
        else {
          const [status, header] = stdout.trim().split(' ');
          resolve({ status: Number(status), header: header ?? '' });
        }
      },
    );
  });
}

test('hmac: a curl signed with the openssl one-liner runs; the same header replayed is refused (401) and runs nothing', async () => {
  const body = '{"version":"42"}';
  const first = await hmacCurl('/deploy/app?tag=one', body);
  assert.equal(first.status, 200);
  assert.ok(markerExists(server, 'hmac-one'));
  const replay = await post('/deploy/app?tag=one', body, { 'armhook-signature': first.header, 'content-type': 'application/json' });
  const error = assertJsonError(replay, 401, 'unauthorized');
  assert.match(error.message, /already used/);
  const jobs = (await fetchText(server, '/jobs?hook=deploy/app&limit=500', { auth: 'api:api-pw' })).json().items;
  assert.equal(jobs.length, 1, 'one job for the signature');
  assert.equal(jobs[0].caller, 'signature:deployer');
});

test('hmac refusals: stale, from the future, wrong secret, body or path changed, malformed; nothing runs', async () => {
  const now = Math.floor(Date.now() / 1000);
  const body = '{"version":"43"}';
  const cases: Array<[string, string, string]> = [
    ['stale', '/deploy/app?tag=stale', hmacSignature(HMAC_SECRET, 'POST', '/deploy/app?tag=stale', body, now - 400)],
    ['future', '/deploy/app?tag=future', hmacSignature(HMAC_SECRET, 'POST', '/deploy/app?tag=future', body, now + 400)],
    ['wrong-secret', '/deploy/app?tag=wrong-secret', hmacSignature('nope', 'POST', '/deploy/app?tag=wrong-secret', body)],
    ['query-changed', '/deploy/app?tag=query-changed', hmacSignature(HMAC_SECRET, 'POST', '/deploy/app?tag=other', body)],
    ['body-changed', '/deploy/app?tag=body-changed', hmacSignature(HMAC_SECRET, 'POST', '/deploy/app?tag=body-changed', '{"version":"44"}')],
    ['malformed', '/deploy/app?tag=malformed', 'v1=abc'],
  ];
  for (const [tag, path, header] of cases) {
    const res = await post(path, body, { 'armhook-signature': header, 'content-type': 'application/json' });
    assertJsonError(res, 401, 'unauthorized');
    assert.ok(!markerExists(server, `hmac-${tag}`), `${tag} must not run`);
  }
  const audit = server.logs.entries().filter((l) => l.audit === 'auth-failed' && l.scheme === 'signature');
  assert.ok(audit.length >= cases.length);
});

test('no signing secret appears in any log line, job record or error', async () => {
  const logs = server.logs.text();
  const stored = (await readTree(server.dataDir)).toString('latin1');
  for (const secret of [GITHUB_SECRET, HMAC_SECRET]) {
    assert.ok(!logs.includes(secret), 'not in the log');
    assert.ok(!stored.includes(secret), 'not in job data');
  }
});

test('a secret file anyone may read makes the access file unusable, naming the file (never its content)', async () => {
  const loose = join(dir, 'loose.secret');
  await writeFile(loose, 'loose-secret-value');
  await chmod(loose, 0o644);
  const file = join(dir, 'loose-access.json');
  await writeFile(file, JSON.stringify({ signatures: { loose: { scheme: 'hmac', secretFile: loose, hooks: ['x'] } } }));
  await assert.rejects(
    loadAccessFile(file),
    (err: Error) => /readable by everyone \(mode 644\)/.test(err.message) && err.message.includes(loose) && !err.message.includes('loose-secret-value'),
  );
});

test('armhook check warns when a GitHub secret serves several hooks (its signature does not cover the URL), and the file stays usable', async () => {
  const file = join(dir, 'shared-access.json');
  await writeFile(file, JSON.stringify({ signatures: { github: { scheme: 'github', secretFile: join(dir, 'github.secret'), hooks: ['ci/*'] } } }));
  const result = await runCheck(dir, {
    ARMHOOK_SCRIPTS_DIR: server.scriptsDir,
    ARMHOOK_TLS_DIR: join(dir, 'tls'),
    ARMHOOK_DATA_DIR: join(dir, 'check-data'),
    ARMHOOK_ACCESS: file,
    ARMHOOK_IMDS_ENDPOINT: 'http://127.0.0.1:9',
  });
  assert.match(result.stdout, /^ok {4}access: 0 rule\(s\), 1 signature\(s\)/m);
  assert.match(
    result.stdout,
    /^WARN {2}access: signatures\.github \(github\) serves several hooks \(ci\/\*\): .*replayed to another; give each GitHub hook its own entry and secret$/m,
  );
  assert.ok(!result.stdout.includes(GITHUB_SECRET));
});
