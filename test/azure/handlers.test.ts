// Every typed handler end to end: handler.run → real ARM SDK → HTTPS ARM fake (test CA), with the
// token from the IMDS fake through the real identity library.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { handlerParams } from '../../server/http/azure.ts';
import { startAzureEnv, type AzureEnv } from './setup.ts';

let env: AzureEnv;
let sub: string;

before(async () => {
  env = await startAzureEnv({ arm: { inProgressPolls: 2, pageSize: 2 } });
  sub = env.imds.compute.subscriptionId;
});
after(async () => {
  await env?.close();
});

const vmIdOf = (rg: string, name: string): string => `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/${name}`;

describe('catalog', () => {
  test('paths, methods and parameter names are the documented ones', async () => {
    const table = (await env.azure.loadHandlers()).map((h) => `${h.method} ${h.path}`);
    assert.deepEqual(table, [
      'GET azure/whoami',
      'GET azure/groups',
      'POST azure/groups/create',
      'POST azure/groups/delete',
      'GET azure/vms',
      'GET azure/vms/show',
      'POST azure/vms/start',
      'POST azure/vms/stop',
      'POST azure/vms/restart',
      'POST azure/vms/deallocate',
      'POST azure/vms/delete',
      'POST azure/vms/run-command',
      'POST azure/deployments/create',
    ]);
    // The routes registered at start-up (without loading the handlers) are the same list.
    assert.deepEqual(
      env.azure.routes.map((r) => `${r.method} ${r.path}`),
      table,
    );
    for (const h of await env.azure.loadHandlers()) {
      assert.ok(h.description.length > 20, `${h.path} has a description`);
      assert.equal((h.params as { type?: string }).type, 'object');
      for (const name of Object.keys((h.params as { properties?: object }).properties ?? {})) {
        assert.match(name, /^[a-z][a-z0-9_]*$/, `${h.path} parameter ${name}`);
      }
    }
  });
});

describe('whoami', () => {
  test('names the identity from the token claims and the VM from instance metadata', async () => {
    const { result, lines } = await env.run('azure/whoami');
    assert.deepEqual(result, {
      principalId: env.imds.claims.oid,
      tenantId: env.imds.claims.tid,
      clientId: env.imds.claims.appid,
      identityType: 'system-assigned',
      managedIdentityResourceId: `/subscriptions/${sub}/resourcegroups/runner-rg/providers/Microsoft.Compute/virtualMachines/runner-vm`,
      subscriptionId: sub,
      resourceGroup: 'runner-rg',
      location: 'westeurope',
      vmName: 'runner-vm',
      vmId: env.imds.compute.vmId,
      armEndpoint: env.arm.url,
    });
    assert.ok(lines.includes(`principal id: ${env.imds.claims.oid}`));
    assert.ok(!lines.some((l) => l.includes('eyJ')), 'no token in the output');
  });
});

describe('resource groups', () => {
  test('list follows nextLink pages', async () => {
    for (const name of ['g-a', 'g-b', 'g-c']) env.arm.addGroup(name, 'northeurope');
    const before = env.arm.requests.length;
    const { result, lines } = await env.run('azure/groups');
    const r = result as { count: number; groups: Array<{ name: string; location: string; provisioningState: string }> };
    assert.ok(r.count >= 3);
    for (const name of ['g-a', 'g-b', 'g-c']) {
      assert.ok(
        r.groups.some((g) => g.name === name && g.location === 'northeurope' && g.provisioningState === 'Succeeded'),
        name,
      );
    }
    assert.ok(lines.includes('g-b\tnortheurope\tSucceeded'));
    const lists = env.arm.requests.slice(before).filter((q) => q.method === 'GET' && /\/resourcegroups$/i.test(q.path));
    assert.ok(lists.length >= 2, 'more than one page was read');
  });

  test("create defaults the location to the VM's, then updates", async () => {
    const created = await env.run('azure/groups/create', { name: 'new-rg' });
    assert.deepEqual(created.result, {
      id: `/subscriptions/${sub}/resourceGroups/new-rg`,
      name: 'new-rg',
      location: 'westeurope',
      provisioningState: 'Succeeded',
      created: true,
    });
    assert.equal(env.arm.groups.get('new-rg')?.location, 'westeurope');
    const again = await env.run('azure/groups/create', { name: 'new-rg', location: 'westeurope' });
    assert.equal((again.result as { created: boolean }).created, false);
  });

  test("create in another location than the existing group is a 409 with ARM's message", async () => {
    env.arm.addGroup('placed-rg', 'eastus');
    const { error } = await env.runFailing('azure/groups/create', { name: 'placed-rg', location: 'westus' });
    assert.equal(error.status, 409);
    assert.equal(error.code, 'arm_conflict');
    assert.match(error.message, /InvalidResourceGroupLocation/);
    assert.match(error.message, /already exists in location 'eastus'/);
  });

  test('delete is a long-running operation with progress events', async () => {
    env.arm.addGroup('doomed-rg');
    env.arm.addVm('doomed-rg', 'inside');
    const { result, progress, lines } = await env.run('azure/groups/delete', { name: 'doomed-rg' });
    assert.deepEqual(result, { id: `/subscriptions/${sub}/resourceGroups/doomed-rg`, name: 'doomed-rg', provisioningState: 'Deleted' });
    assert.deepEqual(
      progress.map((p) => p['status']),
      ['accepted', 'running', 'running', 'succeeded'],
    );
    assert.ok(progress.every((p) => p['operation'] === 'delete' && p['id'] === `/subscriptions/${sub}/resourceGroups/doomed-rg`));
    assert.equal(env.arm.groups.has('doomed-rg'), false);
    assert.deepEqual(lines, ['deleting resource group doomed-rg...', 'resource group doomed-rg deleted']);
  });

  test('delete of a missing group is a 404 naming it', async () => {
    const { error } = await env.runFailing('azure/groups/delete', { name: 'no-such-rg' });
    assert.equal(error.status, 404);
    assert.equal(error.code, 'arm_not_found');
    assert.match(error.message, /resource group no-such-rg/);
    assert.match(error.message, /ResourceGroupNotFound/);
  });
});

describe('virtual machines', () => {
  before(() => {
    env.arm.addGroup('vm-rg');
    env.arm.addGroup('other-rg');
    env.arm.addVm('vm-rg', 'web1', { powerState: 'running', vmSize: 'Standard_D2s_v5' });
    env.arm.addVm('vm-rg', 'web2', { powerState: 'deallocated' });
    env.arm.addVm('other-rg', 'db1', { powerState: 'stopped' });
  });

  test('list of one group, with power state', async () => {
    const { result, lines } = await env.run('azure/vms', { rg: 'vm-rg' });
    const r = result as { count: number; vms: Array<Record<string, unknown>> };
    const byName = Object.fromEntries(r.vms.map((v) => [v['name'], v]));
    assert.deepEqual(Object.keys(byName).sort(), ['web1', 'web2']);
    assert.deepEqual(byName['web1'], {
      id: vmIdOf('vm-rg', 'web1'),
      name: 'web1',
      resourceGroup: 'vm-rg',
      location: 'westeurope',
      vmSize: 'Standard_D2s_v5',
      powerState: 'running',
      provisioningState: 'Succeeded',
    });
    assert.equal(byName['web2']?.['powerState'], 'deallocated');
    assert.ok(lines.includes('vm-rg/web2\tdeallocated\tStandard_B2s'));
  });

  test('list of the whole subscription when rg is absent', async () => {
    const { result } = await env.run('azure/vms');
    const r = result as { resourceGroup: null; vms: Array<{ name: string; resourceGroup: string; powerState: string }> };
    assert.equal(r.resourceGroup, null);
    assert.ok(r.vms.some((v) => v.name === 'db1' && v.resourceGroup === 'other-rg' && v.powerState === 'stopped'));
    assert.ok(r.vms.some((v) => v.name === 'web1' && v.resourceGroup === 'vm-rg'));
  });

  test('show: one VM with its size, state and the two ARM reads it took', async () => {
    const before = env.arm.requests.length;
    const { result, lines } = await env.run('azure/vms/show', { rg: 'vm-rg', name: 'web1' });
    assert.deepEqual(result, {
      id: vmIdOf('vm-rg', 'web1'),
      name: 'web1',
      resourceGroup: 'vm-rg',
      location: 'westeurope',
      vmSize: 'Standard_D2s_v5',
      osType: null,
      powerState: 'running',
      provisioningState: 'Succeeded',
      networkInterfaces: [],
    });
    assert.deepEqual(lines, ['vm-rg/web1\trunning\tStandard_D2s_v5']);
    const sent = env.arm.requests
      .slice(before)
      .map((r) => `${r.method} ${r.path.replace(/\?.*/, '')}`)
      .sort();
    assert.deepEqual(sent, [`GET ${vmIdOf('vm-rg', 'web1')}`, `GET ${vmIdOf('vm-rg', 'web1')}/instanceView`]);
  });

  test('show of a missing VM is a 404 naming it; a bad or missing name is refused before the handler runs', async () => {
    const { error } = await env.runFailing('azure/vms/show', { rg: 'vm-rg', name: 'nope' });
    assert.equal(error.status, 404);
    assert.equal(error.code, 'arm_not_found');
    assert.match(error.message, /virtual machine nope in resource group vm-rg/);
    await assert.rejects(
      handlerParams(
        env.handler('azure/vms/show'),
        new Map([
          ['rg', 'vm-rg'],
          ['name', '../x'],
        ]),
      ),
      { code: 'invalid_param' },
    );
    await assert.rejects(handlerParams(env.handler('azure/vms/show'), new Map([['rg', 'vm-rg']])), /parameter "name"/);
  });

  test('list of a missing group is a 404', async () => {
    const { error } = await env.runFailing('azure/vms', { rg: 'missing-rg' });
    assert.equal(error.status, 404);
    assert.match(error.message, /resource group missing-rg/);
  });

  for (const [op, from, to] of [
    ['start', 'deallocated', 'running'],
    ['stop', 'running', 'stopped'],
    ['restart', 'running', 'running'],
    ['deallocate', 'running', 'deallocated'],
  ] as const) {
    test(`${op}: polls the async operation, streams progress, reports the new power state`, async () => {
      const name = `pw-${op}`;
      env.arm.addVm('vm-rg', name, { powerState: from });
      const before = env.arm.requests.length;
      const { result, progress, lines } = await env.run(`azure/vms/${op}`, { rg: 'vm-rg', name });
      assert.deepEqual(result, {
        id: vmIdOf('vm-rg', name),
        name,
        resourceGroup: 'vm-rg',
        operation: op,
        provisioningState: 'Succeeded',
        powerState: to,
      });
      assert.equal(env.arm.vms.get(`vm-rg/${name}`)?.powerState, to);
      assert.deepEqual(
        progress.map((p) => p['status']),
        ['accepted', 'running', 'running', 'succeeded'],
      );
      assert.ok(progress.every((p) => p['operation'] === op));
      assert.equal(lines.at(-1), `vm-rg/${name}: ${op} succeeded, power state ${to}`);
      const sent = env.arm.requests.slice(before);
      const armOp = op === 'stop' ? 'poweroff' : op;
      assert.equal(sent[0]?.method, 'POST');
      assert.match(sent[0]?.path ?? '', new RegExp(`/virtualMachines/${name}/${armOp}$`, 'i'));
      assert.equal(sent.filter((r) => /\/operations\/op-/.test(r.path)).length, 3, 'two InProgress polls and the final one');
    });
  }

  test('delete removes the VM (LRO, no power state)', async () => {
    env.arm.addVm('vm-rg', 'gone');
    const { result, progress } = await env.run('azure/vms/delete', { rg: 'vm-rg', name: 'gone' });
    assert.deepEqual(result, { id: vmIdOf('vm-rg', 'gone'), name: 'gone', resourceGroup: 'vm-rg', operation: 'delete', provisioningState: 'Deleted' });
    assert.equal(progress.at(-1)?.['status'], 'succeeded');
    assert.equal(env.arm.vms.has('vm-rg/gone'), false);
  });

  test('an operation on a missing VM is a 404 naming the VM', async () => {
    const { error } = await env.runFailing('azure/vms/start', { rg: 'vm-rg', name: 'nope' });
    assert.equal(error.status, 404);
    assert.equal(error.code, 'arm_not_found');
    assert.match(error.message, /virtual machine nope in resource group vm-rg/);
  });
});

describe('run-command', () => {
  before(() => {
    env.arm.addGroup('rc-rg');
    env.arm.addVm('rc-rg', 'box', { powerState: 'running' });
    env.arm.addVm('rc-rg', 'off', { powerState: 'deallocated' });
  });

  test('progress while it runs, then the output lines ARM returns', async () => {
    const before = env.arm.requests.length;
    const { result, progress, lines, events } = await env.run('azure/vms/run-command', { rg: 'rc-rg', name: 'box', script: 'echo one\necho two' });
    assert.deepEqual(
      progress.map((p) => p['status']),
      ['accepted', 'running', 'running', 'succeeded'],
    );
    assert.deepEqual(lines, ['running RunShellScript in rc-rg/box...', 'ran: echo one', 'ran: echo two']);
    // Output comes after the last progress event (ARM returns it when the command has finished).
    const lastProgress = events.findLastIndex((e) => e.kind === 'progress');
    const firstOutput = events.findIndex((e) => e.kind === 'line' && e.text === 'ran: echo one');
    assert.ok(firstOutput > lastProgress);
    const r = result as Record<string, unknown>;
    assert.equal(r['stdout'], 'ran: echo one\nran: echo two\n');
    assert.equal(r['stderr'], '');
    assert.equal(r['provisioningState'], 'Succeeded');
    const sent = env.arm.requests.slice(before).find((q) => q.method === 'POST');
    assert.deepEqual(sent?.body, { commandId: 'RunShellScript', script: ['echo one', 'echo two'] });
  });

  test('the request body is the script when `script` is absent; stderr is marked', async () => {
    const saved = env.arm.runCommandOutput;
    env.arm.runCommandOutput = (script) => [
      {
        code: 'ProvisioningState/succeeded',
        level: 'Info',
        displayStatus: 'Provisioning succeeded',
        message: `Enable succeeded: \n[stdout]\n${script.join('|')}\n\n[stderr]\nwarning: x\n`,
      },
    ];
    try {
      const { lines, result } = await env.run('azure/vms/run-command', { rg: 'rc-rg', name: 'box' }, { body: 'uname -a\r\nid\n' });
      assert.deepEqual(lines.slice(1), ['uname -a|id', '[stderr]', 'warning: x']);
      assert.equal((result as { stderr: string }).stderr, 'warning: x\n');
    } finally {
      env.arm.runCommandOutput = saved;
    }
  });

  test('a script that fails inside the VM fails the job with its output', async () => {
    const saved = env.arm.runCommandOutput;
    env.arm.runCommandOutput = () => [
      {
        code: 'ProvisioningState/failed',
        level: 'Error',
        displayStatus: 'Provisioning failed',
        message: 'Enable failed: failed to execute command: command terminated with exit status=3\n[stdout]\npartial\n\n[stderr]\nboom\n',
      },
    ];
    try {
      const { error, lines } = await env.runFailing('azure/vms/run-command', { rg: 'rc-rg', name: 'box', script: 'exit 3' });
      assert.equal(error.status, 500);
      assert.equal(error.code, 'script_failed');
      assert.equal(error.details?.['stdout'], 'partial\n');
      assert.equal(error.details?.['stderr'], 'boom\n');
      assert.deepEqual(lines.slice(1), ['partial', '[stderr]', 'boom']);
    } finally {
      env.arm.runCommandOutput = saved;
    }
  });

  test('no script at all is a 400 before anything is sent', async () => {
    const before = env.arm.requests.length;
    const { error } = await env.runFailing('azure/vms/run-command', { rg: 'rc-rg', name: 'box' }, { body: '  \n' });
    assert.equal(error.status, 400);
    assert.equal(error.code, 'bad_parameter');
    assert.equal(env.arm.requests.length, before);
  });

  test("a deallocated VM is ARM's 409, passed through", async () => {
    const { error } = await env.runFailing('azure/vms/run-command', { rg: 'rc-rg', name: 'off', script: 'true' });
    assert.equal(error.status, 409);
    assert.equal(error.code, 'arm_conflict');
    assert.match(error.message, /not running/);
  });
});

describe('requests', () => {
  test('every ARM request carried a bearer token and went to the ARM fake over TLS', () => {
    assert.ok(env.arm.requests.length > 0);
    assert.ok(env.arm.requests.every((r) => r.bearer));
  });
});
