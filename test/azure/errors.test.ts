// ARM failures as a caller sees them: 403 with principal, scope, role and the az command; 404
// naming the resource; 409 passed through; 5xx/429 retried by the SDK, then 502/429; an ARM
// endpoint that cannot be reached or not be trusted → 502 saying so.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { createAzure } from '../../server/azure/index.ts';
import { armErrorOf, toHandlerError, type ArmAction } from '../../server/azure/errors.ts';
import { collectingSink, silentLogger, startAzureEnv, type AzureEnv } from './setup.ts';

let env: AzureEnv;
let sub: string;
let oid: string;

before(async () => {
  env = await startAzureEnv({ arm: { inProgressPolls: 1 } });
  sub = env.imds.compute.subscriptionId;
  oid = env.imds.claims.oid;
  env.arm.addGroup('err-rg');
  env.arm.addVm('err-rg', 'vm1', { powerState: 'deallocated' });
});
after(async () => {
  env.arm.clearFailures();
  await env?.close();
});

describe('403 AuthorizationFailed', () => {
  test('VM start: principal id, permission, scope, role and the az command', async () => {
    env.arm.fail({ method: 'POST', path: '/virtualMachines/vm1/start', status: 403, times: 1 });
    const { error } = await env.runFailing('azure/vms/start', { rg: 'err-rg', name: 'vm1' });
    const scope = `/subscriptions/${sub}/resourceGroups/err-rg`;
    assert.equal(error.status, 403);
    assert.equal(error.code, 'arm_forbidden');
    assert.match(error.message, new RegExp(`principal id ${oid}`));
    assert.match(error.message, /Microsoft\.Compute\/virtualMachines\/start\/action/);
    assert.match(error.message, /"Virtual Machine Contributor"/);
    const command = `az role assignment create --assignee ${oid} --role "Virtual Machine Contributor" --scope ${scope}`;
    assert.ok(error.message.includes(command), error.message);
    assert.equal(error.details?.['command'], command);
    assert.equal(error.details?.['principalId'], oid);
    assert.equal(error.details?.['scope'], scope);
    assert.equal(error.details?.['armCode'], 'AuthorizationFailed');
  });

  test('group create: the grant goes on the subscription (the group does not exist yet), Contributor', async () => {
    env.arm.fail({ method: 'PUT', path: '/resourcegroups/locked-rg', status: 403, times: 1 });
    const { error } = await env.runFailing('azure/groups/create', { name: 'locked-rg' });
    assert.equal(error.status, 403);
    assert.equal(error.details?.['role'], 'Contributor');
    assert.equal(error.details?.['scope'], `/subscriptions/${sub}`);
    assert.equal(error.details?.['permission'], 'Microsoft.Resources/subscriptions/resourcegroups/write');
    assert.ok(error.message.includes(`az role assignment create --assignee ${oid} --role "Contributor" --scope /subscriptions/${sub}`));
  });

  test('listing needs Reader', async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 403, times: 1 });
    const { error } = await env.runFailing('azure/groups');
    assert.equal(error.status, 403);
    assert.equal(error.details?.['role'], 'Reader');
    assert.match(error.message, /--role "Reader" --scope \/subscriptions\//);
  });

  test('deployment create: Contributor on the resource group', async () => {
    env.arm.fail({ method: 'PUT', path: '/deployments/denied', status: 403, times: 1 });
    const { error } = await env.runFailing('azure/deployments/create', { rg: 'err-rg', name: 'denied' }, { body: '{"template": {"resources": []}}' });
    assert.equal(error.status, 403);
    assert.equal(error.details?.['role'], 'Contributor');
    assert.equal(error.details?.['scope'], `/subscriptions/${sub}/resourceGroups/err-rg`);
    assert.equal(error.details?.['permission'], 'Microsoft.Resources/deployments/write');
  });

  test('a 403 while polling an LRO maps the same way', async () => {
    env.arm.addVm('err-rg', 'vm-poll', { powerState: 'running' });
    env.arm.fail({ method: 'GET', path: '/operations/', status: 403, times: 1, message: 'The client has no access to this operation.' });
    const { error } = await env.runFailing('azure/vms/deallocate', { rg: 'err-rg', name: 'vm-poll' });
    assert.equal(error.status, 403);
    assert.equal(error.code, 'arm_forbidden');
    assert.match(error.message, /az role assignment create/);
  });
});

// The SDK's paging helpers throw "Pagination failed with unexpected statusCode 403" without ARM's
// body; the clients' pipeline policy keeps ARM's code and message so a list maps like any call.
describe('list calls keep ARM\'s own error (not the SDK\'s "Pagination failed")', () => {
  const vmsOfGroup = (rg: string): RegExp => new RegExp(`/resourceGroups/${rg}/providers/Microsoft\\.Compute/virtualMachines$`, 'i');
  const vmsOfSubscription = /^\/subscriptions\/[^/]+\/providers\/Microsoft\.Compute\/virtualMachines$/i;

  function assertArmForbidden(
    error: { status: number; code: string; message: string; details?: Record<string, unknown> | undefined },
    permission: string,
  ): void {
    assert.equal(error.status, 403);
    assert.equal(error.code, 'arm_forbidden');
    assert.doesNotMatch(String(error.details?.['armMessage']), /^Pagination failed/, JSON.stringify(error.details));
    assert.match(String(error.details?.['armMessage']), /does not have authorization to perform action/);
    assert.equal(error.details?.['armCode'], 'AuthorizationFailed');
    assert.equal(error.details?.['permission'], permission);
    assert.ok(error.message.includes(`missing permission ${permission}`), error.message);
  }

  test('resource groups', async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 403, times: 1 });
    const { error } = await env.runFailing('azure/groups');
    assertArmForbidden(error, 'Microsoft.Resources/subscriptions/resourcegroups/read');
  });

  test('VMs of a resource group', async () => {
    env.arm.fail({ method: 'GET', path: vmsOfGroup('err-rg'), status: 403, times: 1 });
    const { error } = await env.runFailing('azure/vms', { rg: 'err-rg' });
    assertArmForbidden(error, 'Microsoft.Compute/virtualMachines/read');
    assert.equal(error.details?.['scope'], `/subscriptions/${sub}/resourceGroups/err-rg`);
  });

  test('VMs of the subscription', async () => {
    env.arm.fail({ method: 'GET', path: vmsOfSubscription, status: 403, times: 1 });
    const { error } = await env.runFailing('azure/vms');
    assertArmForbidden(error, 'Microsoft.Compute/virtualMachines/read');
    assert.equal(error.details?.['scope'], `/subscriptions/${sub}`);
  });

  test('VM power states (the statusOnly list after a successful list of the group)', async () => {
    env.arm.fail({ method: 'GET', path: vmsOfSubscription, status: 403, times: 1 });
    const before = env.arm.requests.length;
    const { error } = await env.runFailing('azure/vms', { rg: 'err-rg' });
    assertArmForbidden(error, 'Microsoft.Compute/virtualMachines/read');
    const sent = env.arm.requests.slice(before);
    assert.deepEqual(
      sent.map((r) => r.status),
      [200, 403],
      'the group list succeeded; the statusOnly list was refused',
    );
    assert.equal(sent[1]?.query['statusOnly'], 'true');
  });

  test("404 on a list: ARM's message, the resource named", async () => {
    const { error } = await env.runFailing('azure/vms', { rg: 'missing-rg' });
    assert.equal(error.status, 404);
    assert.equal(error.code, 'arm_not_found');
    assert.equal(error.details?.['armCode'], 'ResourceGroupNotFound');
    assert.match(error.message, /^not found: resource group missing-rg \(ResourceGroupNotFound: Resource group 'missing-rg' could not be found\.\)$/);
  });

  test('deployment operations (403 and 404), through the clients', async () => {
    const clients = await env.azure.clients();
    const action: ArmAction = {
      what: 'list the operations of deployment d1 in resource group err-rg',
      resource: 'deployment d1 in resource group err-rg',
      scope: `/subscriptions/${sub}/resourceGroups/err-rg`,
      role: 'Reader',
      principalId: oid,
    };
    const listing = async (name: string): Promise<unknown> => {
      try {
        for await (const _op of clients.deployments.deploymentOperations.list('err-rg', name)) void _op;
      } catch (err) {
        return err;
      }
      throw new Error('the list was expected to fail');
    };
    const missing = await listing('no-such-deployment');
    assert.deepEqual(armErrorOf(missing), { status: 404, code: 'DeploymentNotFound', message: "Deployment 'no-such-deployment' could not be found." });
    const notFound = toHandlerError(missing, action);
    assert.equal(notFound.status, 404);
    assert.match(notFound.message, /DeploymentNotFound: Deployment 'no-such-deployment' could not be found\./);

    env.arm.fail({ method: 'GET', path: /\/deployments\/d1\/operations$/i, status: 403, times: 1 });
    const denied = await listing('d1');
    const forbidden = toHandlerError(denied, action);
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.details?.['permission'], 'Microsoft.Resources/subscriptions/resourcegroups/read', "parsed from ARM's message");
    assert.doesNotMatch(String(forbidden.details?.['armMessage']), /^Pagination failed/);
  });

  test('only the code and message are kept: no headers, no request, no token', async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 403, times: 1 });
    const clients = await env.azure.clients();
    let caught: unknown;
    try {
      for await (const _g of clients.resources.resourceGroups.list()) void _g;
    } catch (err) {
      caught = err;
    }
    const body = armErrorOf(caught);
    assert.ok(body, "ARM's body was recorded for the failed request");
    assert.deepEqual(Object.keys(body).sort(), ['code', 'message', 'status']);
    assert.ok(!JSON.stringify(body).includes('eyJ'), 'no token');
    assert.equal(armErrorOf(new Error('not a RestError')), undefined);
  });
});

describe('other ARM statuses', () => {
  test('404 names the resource', async () => {
    const { error } = await env.runFailing('azure/vms/restart', { rg: 'err-rg', name: 'ghost' });
    assert.equal(error.status, 404);
    assert.equal(error.code, 'arm_not_found');
    assert.match(error.message, /^not found: virtual machine ghost in resource group err-rg \(ResourceNotFound: /);
  });

  test("409 is passed through with ARM's code and message", async () => {
    env.arm.fail({
      method: 'POST',
      path: '/virtualMachines/vm1/start',
      status: 409,
      code: 'OperationNotAllowed',
      message: 'Another operation is in progress.',
      times: 1,
    });
    const { error } = await env.runFailing('azure/vms/start', { rg: 'err-rg', name: 'vm1' });
    assert.equal(error.status, 409);
    assert.equal(error.code, 'arm_conflict');
    assert.match(error.message, /OperationNotAllowed: Another operation is in progress\./);
  });

  test('a transient 503 is retried by the SDK and the job succeeds', async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 503, times: 1 });
    const before = env.arm.requests.length;
    const { result } = await env.run('azure/groups');
    assert.ok((result as { count: number }).count >= 1);
    const lists = env.arm.requests.slice(before).filter((r) => /\/resourcegroups$/i.test(r.path));
    assert.deepEqual(
      lists.map((r) => r.status),
      [503, 200],
    );
  });

  test('a persistent 500 is reported as 502 after the retries', async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 500, code: 'InternalServerError', message: 'Something broke.' });
    try {
      const before = env.arm.requests.length;
      const { error } = await env.runFailing('azure/groups');
      assert.equal(error.status, 502);
      assert.equal(error.code, 'arm_unavailable');
      assert.match(error.message, /answered 500 \(InternalServerError\)/);
      assert.match(error.message, /retried 2 times/);
      assert.equal(env.arm.requests.length - before, 3, 'first try + 2 retries');
    } finally {
      env.arm.clearFailures();
    }
  });

  test('persistent throttling is a 429', async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 429, code: 'TooManyRequests', message: 'Rate limit exceeded.' });
    try {
      const { error } = await env.runFailing('azure/groups');
      assert.equal(error.status, 429);
      assert.equal(error.code, 'arm_throttled');
    } finally {
      env.arm.clearFailures();
    }
  });

  test('a transient 500 while polling is retried, the LRO completes', async () => {
    env.arm.addVm('err-rg', 'vm-flaky', { powerState: 'running' });
    env.arm.fail({ method: 'GET', path: '/operations/', status: 500, times: 1 });
    const { result } = await env.run('azure/vms/stop', { rg: 'err-rg', name: 'vm-flaky' });
    assert.equal((result as { powerState: string }).powerState, 'stopped');
  });
});

describe('ARM endpoint problems', () => {
  const sinkCtx = () => ({
    params: {},
    clients: undefined,
    signal: new AbortController().signal,
    sink: collectingSink().sink,
    log: silentLogger(),
    body: Buffer.alloc(0),
  });

  test('nothing listening: 502 arm_unreachable naming the endpoint', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const azure = createAzure({
      imdsEndpoint: env.imds.url,
      armEndpoint: `https://127.0.0.1:${port}`,
      pollIntervalMs: 2,
      retry: { maxRetries: 1, retryDelayInMs: 1, maxRetryDelayInMs: 2 },
      log: silentLogger(),
    });
    azure.start();
    await azure.whenReady();
    try {
      const groups = (await azure.loadHandlers()).find((h) => h.path === 'azure/groups');
      await assert.rejects(groups!.run(sinkCtx()), (err: { status: number; code: string; message: string }) => {
        assert.equal(err.status, 502);
        assert.equal(err.code, 'arm_unreachable');
        assert.match(err.message, new RegExp(`could not reach Azure Resource Manager at https://127\\.0\\.0\\.1:${port}`));
        assert.match(err.message, /ECONNREFUSED/);
        return true;
      });
      const check = await azure.check();
      assert.equal(check.ok, false);
      assert.match(check.lines.at(-1)?.text ?? '', /ECONNREFUSED/);
      assert.deepEqual(
        check.lines.map((l) => l.ok),
        [true, true, false],
        'metadata and token ok, ARM unreachable',
      );
    } finally {
      azure.close();
    }
  });

  test('ARM certificate not trusted (no armCaCert): 502 saying so', async () => {
    const azure = createAzure({
      imdsEndpoint: env.imds.url,
      armEndpoint: env.arm.url,
      pollIntervalMs: 2,
      retry: { maxRetries: 0 },
      log: silentLogger(),
    });
    azure.start();
    await azure.whenReady();
    try {
      const groups = (await azure.loadHandlers()).find((h) => h.path === 'azure/groups');
      await assert.rejects(groups!.run(sinkCtx()), (err: { status: number; code: string; message: string }) => {
        assert.equal(err.status, 502);
        assert.equal(err.code, 'arm_unreachable');
        assert.match(err.message, /certificate/i);
        assert.match(err.message, /ARMHOOK_ARM_CA_FILE/);
        return true;
      });
    } finally {
      azure.close();
    }
  });
});
