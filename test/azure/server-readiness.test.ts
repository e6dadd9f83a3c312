// Off Azure, through the REAL server: IMDS refuses connections → the server starts anyway,
// GET /readyz is 503 with the reason, /azure/* answers 503 JSON at once (no job, nothing sent to
// ARM, no token request), /healthz is 200 and a script that needs no Azure still runs. When
// IMDS comes back, the background retry makes the server ready without a restart.
// A file of its own: the identity library keeps its IMDS host per process.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertJsonError, curl, doneRecord, fetchText, listJobs, parseSse } from '../helpers/server.ts';
import { startAzureServer, type AzureServerEnv } from './setup.ts';

let env: AzureServerEnv;

before(async () => {
  env = await startAzureServer({
    imdsDown: true,
    scripts: {
      'demo/hello.sh': '#!/bin/sh\necho "hello $name"\necho "sub=${AZURE_SUBSCRIPTION_ID:-none}"\n',
    },
  });
  env.arm.addGroup('any-rg');
  // The server's first start-up attempt has finished (no clock: the service says when).
  await env.server.armhook.azure.firstAttempt();
});
after(async () => {
  await env?.close();
});

describe('IMDS down', () => {
  test('the server started; /healthz is 200', async () => {
    const res = await fetchText(env.server, '/healthz');
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json(), { status: 'ok' });
  });

  test('/readyz is 503 and says what is missing', async () => {
    const res = await fetchText(env.server, '/readyz');
    assert.equal(res.status, 503, res.body);
    const body = res.json<{ status: string; reasons: string[] }>();
    assert.equal(body.status, 'not_ready');
    assert.ok(
      body.reasons.some((r) => r.includes(`instance metadata unreachable at ${env.imds.url}`) && r.includes('ECONNREFUSED')),
      body.reasons.join('\n'),
    );
    assert.ok(
      body.reasons.some((r) => /managed identity token: not requested/.test(r)),
      body.reasons.join('\n'),
    );
  });

  for (const [method, path] of [
    ['GET', '/azure/whoami'],
    ['GET', '/azure/groups'],
    ['POST', '/azure/vms/start?rg=any-rg&name=vm1'],
    ['POST', '/azure/deployments/create?rg=any-rg&name=d1'],
  ] as const) {
    for (const accept of ['application/json', undefined]) {
      test(`${method} ${path} (${accept ?? 'SSE default'}) answers 503 JSON naming the reason; nothing runs`, async () => {
        const jobsBefore = (await listJobs(env.server)).length;
        const armBefore = env.arm.requests.length;
        const res = await fetchText(env.server, path, { method, headers: accept ? { accept } : {} });
        const body = assertJsonError(res, 503, 'azure_not_ready');
        assert.match(body.message, /instance metadata unreachable/);
        assert.ok(res.headers['retry-after'], 'Retry-After tells when to try again');
        assert.equal(res.headers['armhook-job-id'], undefined);
        assert.equal((await listJobs(env.server)).length, jobsBefore, 'no job');
        assert.equal(env.arm.requests.length, armBefore, 'nothing reached ARM');
      });
    }
  }

  test('curl sees the 503 as JSON too', async () => {
    const result = await curl(env.server, ['-i', `${env.server.url}/azure/whoami`]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^HTTP\/[\d.]+ 503/);
    assert.match(result.stdout, /"error":"azure_not_ready"/);
  });

  test('a script that needs no Azure still runs (no AZURE_* variables)', async () => {
    const result = await curl(env.server, ['-X', 'POST', `${env.server.url}/demo/hello?name=world`]);
    assert.equal(result.code, 0, result.stderr);
    const { events } = parseSse(result.stdout);
    const record = doneRecord(events);
    assert.equal(record['status'], 'succeeded');
    assert.equal(record['exitCode'], 0);
    assert.deepEqual(
      events.filter((e) => e.event === 'message').map((e) => e.data),
      ['hello world', 'sub=none'],
    );
  });

  test('no token was requested while IMDS was unreachable', () => {
    assert.equal(env.imds.counts.token, 0);
    assert.equal(env.imds.counts.metadata, 0);
  });

  test('the catalog still lists the handlers', async () => {
    const res = await fetchText(env.server, '/hooks');
    assert.equal(res.status, 200);
    assert.ok(res.json<{ hooks: Array<{ kind: string }> }>().hooks.filter((h) => h.kind === 'handler').length >= 12);
  });
});

describe('IMDS comes back', () => {
  test('the server becomes ready by itself: /readyz 200, handlers run, scripts get the variables', async () => {
    await env.imds.up();
    await env.server.armhook.azure.whenReady();
    const ready = await fetchText(env.server, '/readyz');
    assert.equal(ready.status, 200, ready.body);
    const whoami = await fetchText(env.server, '/azure/whoami', { headers: { accept: 'application/json' } });
    assert.equal(whoami.status, 200, whoami.body);
    assert.equal(whoami.json()['result']['principalId'], env.imds.claims.oid);
    // Readiness's own request, then the identity library's for the handler.
    assert.deepEqual(
      env.imds.tokenRequests.map((r) => r.path),
      ['/metadata/identity/oauth2/token', '/metadata/identity/oauth2/token/'],
    );
    const script = await fetchText(env.server, '/demo/hello?name=again', { method: 'POST', headers: { accept: 'application/json' } });
    assert.equal(script.json()['output'], `hello again\nsub=${env.imds.compute.subscriptionId}\n`);
  });
});
