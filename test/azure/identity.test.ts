// The managed identity against the IMDS fake: readiness's own token request, then the real
// @azure/identity (MSAL), whose one token request serves every job; claims without the token,
// instance metadata for scripts, `check`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createAzure } from '../../server/azure/index.ts';
import { silentLogger, startAzureEnv, type AzureEnv } from './setup.ts';

let env: AzureEnv;

before(async () => {
  env = await startAzureEnv();
  env.arm.addGroup('busy-rg');
  env.arm.addVm('busy-rg', 'busy-vm', { powerState: 'deallocated' });
});
after(async () => {
  await env?.close();
});

describe('token', () => {
  test('the start-up token request went to the IMDS token path with the ARM audience, without the identity library', () => {
    assert.equal(env.imds.counts.token, 1);
    assert.deepEqual(env.imds.tokenRequests[0], {
      path: '/metadata/identity/oauth2/token',
      method: 'GET',
      resource: env.arm.url,
      apiVersion: '2018-02-01',
      clientId: null,
    });
    assert.equal(env.imds.counts.metadata, 1);
  });

  test("100 handler jobs (concurrent, three clients, LROs) cause exactly one token request, the library's", async () => {
    const tokenBefore = env.imds.counts.token;
    const armBefore = env.arm.requests.length;
    const paths = ['azure/groups', 'azure/vms', 'azure/whoami', 'azure/vms/start', 'azure/deployments/create'];
    const jobs = Array.from({ length: 100 }, (_, i) => {
      const path = paths[i % paths.length] ?? 'azure/groups';
      const params =
        path === 'azure/vms/start'
          ? { rg: 'busy-rg', name: 'busy-vm' }
          : path === 'azure/deployments/create'
            ? { rg: 'busy-rg', name: `d${i}` }
            : path === 'azure/vms'
              ? { rg: 'busy-rg' }
              : {};
      const body = path === 'azure/deployments/create' ? JSON.stringify({ template: { resources: [{ type: 'Microsoft.Web/sites', name: `s${i}` }] } }) : '';
      return env.run(path, params, { body });
    });
    const results = await Promise.all(jobs);
    assert.equal(results.length, 100);
    assert.ok(env.arm.requests.length - armBefore >= 100, 'the jobs really called ARM');
    assert.equal(env.imds.counts.token - tokenBefore, 1, 'one token request for all the jobs');
    assert.deepEqual(
      env.imds.tokenRequests.at(-1),
      { path: '/metadata/identity/oauth2/token/', method: 'GET', resource: env.arm.url, apiVersion: '2018-02-01', clientId: null },
      'sent by MSAL, for the same audience',
    );
    assert.ok(env.arm.requests.slice(armBefore).every((r) => r.bearer));
  });

  test('identity() carries the claims, never the token', () => {
    const id = env.azure.identity();
    assert.equal(id?.principalId, env.imds.claims.oid);
    assert.equal(id?.tenantId, env.imds.claims.tid);
    assert.equal(id?.clientId, env.imds.claims.appid);
    assert.equal(id?.identityType, 'system-assigned');
    assert.ok(!JSON.stringify(id).includes('eyJ'));
  });

  test('a user-assigned identity asks IMDS with its client id', async () => {
    const azure = createAzure({
      imdsEndpoint: env.imds.url,
      armEndpoint: env.arm.url,
      armCaCert: env.pki.caCert,
      managedIdentityClientId: 'uami-client-id',
      pollIntervalMs: 2,
      startupRetry: { initialDelayMs: 2, maxDelayMs: 10 },
      log: silentLogger(),
    });
    // The fake only knows this identity once told so: first a 400 "Identity not found".
    azure.start();
    await azure.firstAttempt();
    assert.equal(azure.readiness().ready, false);
    assert.deepEqual(azure.readiness().reasons, ['managed identity token: the token endpoint refused: invalid_request (Identity not found)']);
    assert.equal(env.imds.tokenRequests.at(-1)?.clientId, 'uami-client-id');
    assert.throws(
      () => azure.requireReady(),
      (err: { status: number; code: string; message: string }) => {
        assert.equal(err.status, 503);
        assert.equal(err.code, 'azure_not_ready');
        assert.match(err.message, /Identity not found/);
        return true;
      },
    );
    // Once IMDS knows the identity, the background retry makes the service ready by itself.
    env.imds.allowClientId('uami-client-id');
    await azure.whenReady();
    const who = (await azure.loadHandlers()).find((h) => h.path === 'azure/whoami');
    const result = (await who!.run({
      params: {},
      clients: undefined,
      signal: new AbortController().signal,
      sink: { line() {}, progress() {} },
      log: silentLogger(),
      body: Buffer.alloc(0),
    })) as { identityType: string; clientId: string; principalId: string };
    assert.equal(result.identityType, 'user-assigned');
    assert.equal(result.clientId, 'uami-client-id');
    assert.notEqual(result.principalId, env.imds.claims.oid);
    azure.close();
  });

  test('where the library would not ask IMDS (Arc, App Service…), readiness asks through the library, with the same messages', async () => {
    const service = (clientId: string) =>
      createAzure({
        imdsEndpoint: env.imds.url,
        armEndpoint: env.arm.url,
        armCaCert: env.pki.caCert,
        managedIdentityClientId: clientId,
        tokenProbe: 'library',
        pollIntervalMs: 2,
        startupRetry: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
        log: silentLogger(),
      });
    const unknown = service('uami-unknown');
    try {
      unknown.start();
      await unknown.firstAttempt();
      assert.deepEqual(unknown.readiness().reasons, ['managed identity token: the token endpoint refused: invalid_request (Identity not found)']);
      assert.equal(env.imds.tokenRequests.at(-1)?.path, '/metadata/identity/oauth2/token/', 'asked by MSAL');
    } finally {
      unknown.close();
    }
    env.imds.allowClientId('uami-library');
    const known = service('uami-library');
    try {
      known.start();
      await known.firstAttempt();
      assert.deepEqual(known.readiness(), { ready: true, reasons: [] });
      assert.equal(known.identity()?.clientId, 'uami-library');
      assert.equal(known.identity()?.identityType, 'user-assigned');
      assert.deepEqual(env.imds.tokenRequests.at(-1), {
        path: '/metadata/identity/oauth2/token/',
        method: 'GET',
        resource: env.arm.url,
        apiVersion: '2018-02-01',
        clientId: 'uami-library',
      });
    } finally {
      known.close();
    }
  });
});

describe('instance metadata', () => {
  test('scriptEnv gives subscription, resource group and location', () => {
    assert.deepEqual(env.azure.scriptEnv(), {
      AZURE_SUBSCRIPTION_ID: env.imds.compute.subscriptionId,
      AZURE_RESOURCE_GROUP: 'runner-rg',
      AZURE_LOCATION: 'westeurope',
    });
    assert.deepEqual(env.azure.metadata(), {
      subscriptionId: env.imds.compute.subscriptionId,
      resourceGroup: 'runner-rg',
      location: 'westeurope',
      vmName: 'runner-vm',
      vmId: env.imds.compute.vmId,
      azEnvironment: 'AzurePublicCloud',
    });
  });

  test('readiness is ready with no reasons; requireReady passes', () => {
    assert.deepEqual(env.azure.readiness(), { ready: true, reasons: [] });
    env.azure.requireReady();
  });
});

describe('check', () => {
  test('lists metadata, identity and ARM reachability, each line ok', async () => {
    const { ok, lines } = await env.azure.check();
    const texts = lines.map((l) => l.text);
    assert.equal(ok, true, texts.join('\n'));
    assert.equal(lines.length, 3);
    assert.deepEqual(
      lines.map((l) => l.ok),
      [true, true, true],
    );
    assert.match(
      texts[0] ?? '',
      /^instance metadata \(http:\/\/127\.0\.0\.1:\d+\): subscription 0{8}-.* resource group runner-rg, location westeurope, VM runner-vm$/,
    );
    assert.match(
      texts[1] ?? '',
      new RegExp(
        `^managed identity \\(system-assigned\\): token obtained for ${env.arm.url.replace(/\./g, '\\.')}/\\.default; principal id ${env.imds.claims.oid}`,
      ),
    );
    assert.match(texts[2] ?? '', /^Resource Manager \(https:\/\/127\.0\.0\.1:\d+\): reachable; subscription .* readable/);
    const list = env.arm.requests.filter((r) => /\/resourcegroups$/i.test(r.path)).at(-1);
    assert.equal(list?.query['$top'], '1');
  });

  test("a 403 on the subscription fails only the ARM line, with the role hint and ARM's missing permission", async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 403, times: 1 });
    const { ok, lines } = await env.azure.check();
    assert.equal(ok, false);
    assert.deepEqual(
      lines.map((l) => l.ok),
      [true, true, false],
      JSON.stringify(lines),
    );
    assert.match(lines[2]?.text ?? '', /az role assignment create --assignee .* --role "Reader"/);
    assert.match(
      lines[2]?.text ?? '',
      /missing permission Microsoft\.Resources\/subscriptions\/resourcegroups\/read/,
      'ARM\'s own message, not "Pagination failed"',
    );
  });
});
