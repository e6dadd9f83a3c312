// Tokens for the process: readiness asks IMDS once itself (the identity library is not loaded
// for it), then 100 handler jobs through the REAL server (GET and POST handlers, LROs among them,
// in parallel batches) cause exactly one more token request, the library's, at the IMDS fake.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fetchText } from '../helpers/server.ts';
import { startAzureServer, type AzureServerEnv } from './setup.ts';

let env: AzureServerEnv;

before(async () => {
  env = await startAzureServer({ arm: { inProgressPolls: 1 }, config: { workers: 4 } });
  env.arm.addGroup('tok-rg');
  env.arm.addVm('tok-rg', 'vm1', { powerState: 'running' });
});
after(async () => {
  await env?.close();
});

test('100 handler jobs → exactly one token request from the identity library, after the readiness probe', async () => {
  assert.equal(env.imds.counts.token, 1, 'readiness obtained a token');
  assert.equal(env.imds.tokenRequests[0]?.path, '/metadata/identity/oauth2/token', 'by its own plain request');
  const paths: Array<{ method: 'GET' | 'POST'; path: string }> = [
    { method: 'GET', path: '/azure/whoami' },
    { method: 'GET', path: '/azure/groups' },
    { method: 'GET', path: '/azure/vms' },
    { method: 'GET', path: '/azure/vms?rg=tok-rg' },
    { method: 'POST', path: '/azure/vms/restart?rg=tok-rg&name=vm1' },
  ];
  const armBefore = env.arm.requests.length;
  let done = 0;
  for (let batch = 0; batch < 5; batch += 1) {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => {
        const p = paths[(batch * 20 + i) % paths.length]!;
        return fetchText(env.server, p.path, { method: p.method, headers: { accept: 'application/json' } });
      }),
    );
    for (const res of results) {
      assert.equal(res.status, 200, res.body.slice(0, 1000));
      assert.equal(res.json()['status'], 'succeeded');
      done += 1;
    }
  }
  assert.equal(done, 100);
  assert.ok(env.arm.requests.length - armBefore >= 80, 'the jobs did talk to ARM');
  assert.ok(
    env.arm.requests.slice(armBefore).every((r) => r.bearer),
    'every ARM request carried the bearer token',
  );
  assert.equal(env.imds.counts.token, 2, `token requests: ${JSON.stringify(env.imds.tokenRequests)}`);
  assert.equal(env.imds.tokenRequests[1]?.path, '/metadata/identity/oauth2/token/', 'the second came from the identity library (MSAL adds the slash)');
  for (const r of env.imds.tokenRequests) {
    assert.equal(r.resource, env.arm.url, 'each token is for the configured ARM endpoint');
    assert.equal(r.apiVersion, '2018-02-01');
  }
  assert.equal(env.imds.counts.metadata, 1, 'instance metadata was read once, at start-up');
});
