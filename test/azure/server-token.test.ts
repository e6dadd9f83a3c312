// One token for the process: 100 handler jobs through the REAL server (GET and POST handlers,
// LROs among them, in parallel batches) cause exactly one token request at the IMDS fake.
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

test('100 handler jobs → exactly one token request to the IMDS fake', async () => {
  // Readiness fetched the one token.
  assert.equal(env.imds.counts.token, 1, 'readiness obtained the token');
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
  assert.ok(env.arm.requests.slice(armBefore).every((r) => r.bearer), 'every ARM request carried the bearer token');
  assert.equal(env.imds.counts.token, 1, `token requests: ${JSON.stringify(env.imds.tokenRequests)}`);
  assert.ok(env.imds.tokenRequests[0]?.resource?.startsWith(env.arm.url), `the token is for the configured ARM endpoint: ${env.imds.tokenRequests[0]?.resource}`);
  assert.equal(env.imds.counts.metadata, 1, 'instance metadata was read once, at start-up');
});
