// Every typed handler of the handler table through the REAL server (HTTPS on loopback, curl and
// node:https), against the IMDS and ARM fakes, in the three output modes: SSE (default),
// `Accept: text/plain` and `Accept: application/json`. Also: the catalog (GET /hooks) and the job
// list (GET /jobs) show the handlers and their jobs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { curlResponse, doneRecord, fetchText, listJobs, open, parseSse, readUntil, type SseEvent } from '../helpers/server.ts';
import { startAzureServer, type AzureServerEnv } from './setup.ts';

let env: AzureServerEnv;
let sub: string;

before(async () => {
  env = await startAzureServer({ arm: { inProgressPolls: 2 } });
  sub = env.imds.compute.subscriptionId;
  env.arm.addGroup('vm-rg');
  env.arm.addGroup('other-rg');
  env.arm.addGroup('app-rg');
  env.arm.addVm('vm-rg', 'web1', { powerState: 'running', vmSize: 'Standard_D2s_v5' });
  env.arm.addVm('other-rg', 'db1', { powerState: 'stopped' });
});
after(async () => {
  await env?.close();
});

type Mode = 'sse' | 'text' | 'json';
const MODES: Mode[] = ['sse', 'text', 'json'];
const ACCEPT: Record<Mode, string | undefined> = { sse: undefined, text: 'text/plain', json: 'application/json' };

interface Outcome {
  mode: Mode;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  jobId: string;
  /** The final job record (from the done event, the JSON body, or GET /jobs/<id> for text mode). */
  record: Record<string, any>;
  /** Output lines (stdout and stderr, in order). */
  lines: string[];
  /** Progress event data (SSE and text modes; JSON mode carries no progress). */
  progress: Array<Record<string, any>>;
  raw: string;
  events?: SseEvent[];
}

const vmIdOf = (rg: string, name: string): string => `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/${name}`;

/** Runs a handler through the server in one mode and normalises what came back. */
async function call(mode: Mode, method: 'GET' | 'POST', path: string, body?: string): Promise<Outcome> {
  if (mode === 'json') {
    const res = await fetchText(env.server, path, {
      method,
      headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body } : {}),
    });
    assert.match(String(res.headers['content-type']), /^application\/json/, res.body);
    const record = res.json<Record<string, any>>();
    const jobId = String(res.headers['armhook-job-id'] ?? '');
    return {
      mode,
      status: res.status,
      headers: res.headers,
      jobId,
      record,
      lines: String(record['output'] ?? '')
        .split('\n')
        .filter((l) => l !== ''),
      progress: [],
      raw: res.body,
    };
  }
  const args = ['-X', method, `${env.server.url}${path}`];
  if (ACCEPT[mode]) args.push('-H', `Accept: ${ACCEPT[mode]}`);
  if (body !== undefined) args.push('-H', 'Content-Type: application/json', '--data-binary', body);
  const res = await curlResponse(env.server, args);
  assert.equal(res.code, 0, res.stderr);
  const jobId = String(res.headers['armhook-job-id'] ?? '');
  if (mode === 'sse') {
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    const { events } = parseSse(res.body);
    for (const e of events) assert.ok(e.id !== undefined && /^\d+$/.test(e.id), `every event has an id: ${JSON.stringify(e)}`);
    assert.equal(events[0]?.event, 'job', 'the stream starts with the job event');
    assert.equal(JSON.parse(events[0]?.data ?? '{}').jobId, jobId, 'the job event names the job of the header');
    const record = doneRecord(events);
    assert.equal(record['jobId'], record['id'], 'done carries jobId = id');
    return {
      mode,
      status: res.status,
      headers: res.headers,
      jobId,
      record,
      lines: events.filter((e) => e.event === 'message' || e.event === 'stderr').map((e) => e.data),
      progress: events.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data) as Record<string, any>),
      raw: res.body,
      events,
    };
  }
  // text
  assert.match(String(res.headers['content-type']), /^text\/plain/);
  const textLines = res.body.split('\n');
  assert.equal(textLines.pop(), '', 'the body ends with a newline');
  const last = textLines.pop() ?? '';
  const progress = textLines
    .filter((l) => l.startsWith('armhook: progress '))
    .map((l) => JSON.parse(l.slice('armhook: progress '.length)) as Record<string, any>);
  const lines = textLines.filter((l) => !l.startsWith('armhook: progress ') && !l.startsWith('armhook: queued'));
  const recordRes = await fetchText(env.server, `/jobs/${jobId}`);
  assert.equal(recordRes.status, 200, recordRes.body);
  const record = recordRes.json<Record<string, any>>();
  assert.equal(last, `armhook: job ${jobId} ${record['status']} (no exit code)`, 'the final line states the status and that a handler has no exit code');
  return { mode, status: res.status, headers: res.headers, jobId, record, lines, progress, raw: res.body };
}

/** What every successful handler run looks like, whatever the mode. */
function assertSucceeded(o: Outcome, hook: string): void {
  assert.equal(o.status, 200, o.raw.slice(0, 2000));
  assert.match(o.jobId, /^\S{16,}$/, 'Armhook-Job-Id header');
  assert.equal(o.record['id'], o.jobId, 'the record is the job of the header');
  assert.equal(o.record['hook'], hook);
  assert.equal(o.record['status'], 'succeeded', JSON.stringify(o.record['error']));
  assert.equal(o.record['exitCode'], null, 'handlers have no exit code');
  assert.equal(o.record['error'], null);
  assert.ok(o.record['result'] && typeof o.record['result'] === 'object', "result carries the handler's outcome");
  for (const k of ['createdAt', 'startedAt', 'endedAt', 'durationMs', 'caller', 'params']) assert.ok(k in o.record, `record has ${k}`);
  assert.ok(!o.raw.includes('eyJ0eXAi'), 'no token in the response');
}

/** Progress of a compute / group LRO with the fake's two InProgress polls (SSE and text modes). */
function assertLroProgress(o: Outcome, operation: string, id: string): void {
  if (o.mode === 'json') return;
  assert.deepEqual(
    o.progress.map((p) => p['status']),
    ['accepted', 'running', 'running', 'succeeded'],
    JSON.stringify(o.progress),
  );
  for (const p of o.progress) {
    assert.equal(p['operation'], operation);
    assert.equal(p['id'], id);
  }
  if (o.events) {
    // Progress comes before done, and done is last.
    const lastProgress = o.events.findLastIndex((e) => e.event === 'progress');
    assert.ok(lastProgress < o.events.length - 1);
  }
}

async function assertListedAsHandlerJob(o: Outcome, hook: string, method: 'GET' | 'POST'): Promise<void> {
  const jobs = await listJobs(env.server, { hook });
  const job = jobs.find((j) => j['id'] === o.jobId);
  assert.ok(job, `job ${o.jobId} is in GET /jobs?hook=${hook}`);
  assert.equal(job['kind'], 'handler');
  assert.equal(job['method'], method);
  assert.equal(job['status'], 'succeeded');
  assert.equal(job['exitCode'], null);
  assert.deepEqual(job['result'], o.record['result']);
}

describe('read-only handlers (GET)', () => {
  for (const mode of MODES) {
    test(`GET /azure/whoami (${mode})`, async () => {
      const o = await call(mode, 'GET', '/azure/whoami');
      assertSucceeded(o, 'azure/whoami');
      assert.deepEqual(o.record['result'], {
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
      assert.ok(o.lines.includes(`principal id: ${env.imds.claims.oid}`), o.lines.join('\n'));
      assert.ok(o.lines.includes('vm: runner-vm'));
      await assertListedAsHandlerJob(o, 'azure/whoami', 'GET');
    });

    test(`GET /azure/groups (${mode})`, async () => {
      const o = await call(mode, 'GET', '/azure/groups');
      assertSucceeded(o, 'azure/groups');
      const r = o.record['result'] as { subscriptionId: string; count: number; groups: Array<Record<string, unknown>> };
      assert.equal(r.subscriptionId, sub);
      assert.ok(r.count >= 3);
      assert.deepEqual(
        r.groups.find((g) => g['name'] === 'vm-rg'),
        { id: `/subscriptions/${sub}/resourceGroups/vm-rg`, name: 'vm-rg', location: 'westeurope', provisioningState: 'Succeeded', tags: {} },
      );
      assert.ok(o.lines.includes('vm-rg\twesteurope\tSucceeded'), o.lines.join('\n'));
      await assertListedAsHandlerJob(o, 'azure/groups', 'GET');
    });

    test(`GET /azure/vms and /azure/vms?rg= (${mode})`, async () => {
      const all = await call(mode, 'GET', '/azure/vms');
      assertSucceeded(all, 'azure/vms');
      const r = all.record['result'] as { resourceGroup: string | null; vms: Array<Record<string, unknown>> };
      assert.equal(r.resourceGroup, null);
      assert.ok(
        r.vms.some((v) => v['name'] === 'db1' && v['resourceGroup'] === 'other-rg' && v['powerState'] === 'stopped'),
        JSON.stringify(r.vms),
      );
      assert.ok(r.vms.some((v) => v['name'] === 'web1' && v['resourceGroup'] === 'vm-rg' && v['powerState'] === 'running'));

      const one = await call(mode, 'GET', '/azure/vms?rg=vm-rg');
      assertSucceeded(one, 'azure/vms');
      assert.deepEqual(one.record['params'], { rg: 'vm-rg' });
      const r1 = one.record['result'] as { resourceGroup: string; vms: Array<Record<string, unknown>> };
      assert.equal(r1.resourceGroup, 'vm-rg');
      assert.ok(r1.vms.every((v) => v['resourceGroup'] === 'vm-rg'));
      assert.deepEqual(
        r1.vms.find((v) => v['name'] === 'web1'),
        {
          id: vmIdOf('vm-rg', 'web1'),
          name: 'web1',
          resourceGroup: 'vm-rg',
          location: 'westeurope',
          vmSize: 'Standard_D2s_v5',
          powerState: 'running',
          provisioningState: 'Succeeded',
        },
      );
      assert.ok(one.lines.includes('vm-rg/web1\trunning\tStandard_D2s_v5'), one.lines.join('\n'));
      await assertListedAsHandlerJob(one, 'azure/vms', 'GET');
    });
  }
});

describe('resource groups (POST)', () => {
  for (const mode of MODES) {
    test(`POST /azure/groups/create, then again (update) (${mode})`, async () => {
      const name = `created-${mode}-rg`;
      const o = await call(mode, 'POST', `/azure/groups/create?name=${name}`);
      assertSucceeded(o, 'azure/groups/create');
      assert.deepEqual(o.record['result'], {
        id: `/subscriptions/${sub}/resourceGroups/${name}`,
        name,
        location: 'westeurope',
        provisioningState: 'Succeeded',
        created: true,
      });
      assert.equal(env.arm.groups.get(name)?.location, 'westeurope', "location defaults to the VM's (instance metadata)");
      assert.ok(o.lines.includes(`resource group ${name} created in westeurope`), o.lines.join('\n'));
      await assertListedAsHandlerJob(o, 'azure/groups/create', 'POST');
      const again = await call(mode, 'POST', `/azure/groups/create?name=${name}&location=westeurope`);
      assertSucceeded(again, 'azure/groups/create');
      assert.equal((again.record['result'] as { created: boolean }).created, false);
    });

    test(`POST /azure/groups/delete streams LRO progress (${mode})`, async () => {
      const name = `doomed-${mode}-rg`;
      env.arm.addGroup(name);
      const o = await call(mode, 'POST', `/azure/groups/delete?name=${name}`);
      assertSucceeded(o, 'azure/groups/delete');
      const id = `/subscriptions/${sub}/resourceGroups/${name}`;
      assert.deepEqual(o.record['result'], { id, name, provisioningState: 'Deleted' });
      assertLroProgress(o, 'delete', id);
      assert.deepEqual(o.lines, [`deleting resource group ${name}...`, `resource group ${name} deleted`]);
      assert.equal(env.arm.groups.has(name), false);
      await assertListedAsHandlerJob(o, 'azure/groups/delete', 'POST');
    });
  }
});

describe('virtual machine power operations (POST)', () => {
  for (const [op, from, to] of [
    ['start', 'deallocated', 'running'],
    ['stop', 'running', 'stopped'],
    ['restart', 'running', 'running'],
    ['deallocate', 'running', 'deallocated'],
    ['delete', 'running', undefined],
  ] as const) {
    for (const mode of MODES) {
      test(`POST /azure/vms/${op} (${mode})`, async () => {
        const name = `${op}-${mode}`;
        env.arm.addVm('vm-rg', name, { powerState: from });
        const o = await call(mode, 'POST', `/azure/vms/${op}?rg=vm-rg&name=${name}`);
        assertSucceeded(o, `azure/vms/${op}`);
        const id = vmIdOf('vm-rg', name);
        if (op === 'delete') {
          assert.deepEqual(o.record['result'], { id, name, resourceGroup: 'vm-rg', operation: op, provisioningState: 'Deleted' });
          assert.equal(env.arm.vms.has(`vm-rg/${name}`), false);
          assert.equal(o.lines.at(-1), `vm-rg/${name} deleted`);
        } else {
          assert.deepEqual(o.record['result'], { id, name, resourceGroup: 'vm-rg', operation: op, provisioningState: 'Succeeded', powerState: to });
          assert.equal(env.arm.vms.get(`vm-rg/${name}`)?.powerState, to);
          assert.equal(o.lines.at(-1), `vm-rg/${name}: ${op} succeeded, power state ${to}`);
        }
        assertLroProgress(o, op, id);
        assert.deepEqual(o.record['params'], { rg: 'vm-rg', name });
        await assertListedAsHandlerJob(o, `azure/vms/${op}`, 'POST');
      });
    }
  }
});

describe('run-command (POST)', () => {
  for (const mode of MODES) {
    test(`POST /azure/vms/run-command: progress, then the output (${mode})`, async () => {
      const name = `rc-${mode}`;
      env.arm.addVm('vm-rg', name, { powerState: 'running' });
      const o = await call(mode, 'POST', `/azure/vms/run-command?rg=vm-rg&name=${name}&script=${encodeURIComponent('echo one\necho two')}`);
      assertSucceeded(o, 'azure/vms/run-command');
      const id = vmIdOf('vm-rg', name);
      assertLroProgress(o, 'run-command', id);
      assert.deepEqual(o.lines, [`running RunShellScript in vm-rg/${name}...`, 'ran: echo one', 'ran: echo two']);
      const r = o.record['result'] as Record<string, unknown>;
      assert.equal(r['id'], id);
      assert.equal(r['stdout'], 'ran: echo one\nran: echo two\n');
      assert.equal(r['stderr'], '');
      assert.equal(r['provisioningState'], 'Succeeded');
      if (o.events) {
        // ARM returns the output when the command has finished: it follows the last progress event.
        const lastProgress = o.events.findLastIndex((e) => e.event === 'progress');
        const firstOutput = o.events.findIndex((e) => e.data === 'ran: echo one');
        assert.ok(firstOutput > lastProgress, 'output after the progress events');
      }
      await assertListedAsHandlerJob(o, 'azure/vms/run-command', 'POST');
    });
  }

  test('the script can be the request body (text/plain body, no script param)', async () => {
    env.arm.addVm('vm-rg', 'rc-body', { powerState: 'running' });
    const res = await curlResponse(env.server, [
      '-X',
      'POST',
      '-H',
      'Accept: application/json',
      '-H',
      'Content-Type: text/plain',
      '--data-binary',
      'uptime\nhostname',
      `${env.server.url}/azure/vms/run-command?rg=vm-rg&name=rc-body`,
    ]);
    assert.equal(res.status, 200, res.body);
    const record = res.json<Record<string, any>>();
    assert.equal(record['status'], 'succeeded');
    assert.equal(record['result']['stdout'], 'ran: uptime\nran: hostname\n');
  });
});

const template = (resources: Array<{ type: string; name: string }>, outputs: Record<string, unknown> = {}): Record<string, unknown> => ({
  $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#',
  contentVersion: '1.0.0.0',
  parameters: { storageName: { type: 'string' }, tier: { type: 'string', defaultValue: 'Standard' } },
  resources,
  outputs,
});

describe('deployments/create (POST, JSON body)', () => {
  for (const mode of MODES) {
    test(`streams every operation state in order and ends with the template outputs (${mode})`, async () => {
      const name = `release-${mode}`;
      const body = JSON.stringify({
        template: template(
          [
            { type: 'Microsoft.Storage/storageAccounts', name: "[parameters('storageName')]" },
            { type: 'Microsoft.Network/virtualNetworks', name: 'vnet1' },
            { type: 'Microsoft.Network/publicIPAddresses', name: 'pip1' },
          ],
          {
            storageName: { type: 'string', value: "[parameters('storageName')]" },
            tier: { type: 'string', value: "[parameters('tier')]" },
            answer: { type: 'int', value: 42 },
          },
        ),
        parameters: { storageName: { value: `store${mode}` } },
      });
      const o = await call(mode, 'POST', `/azure/deployments/create?rg=app-rg&name=${name}`, body);
      assertSucceeded(o, 'azure/deployments/create');
      const id = `/subscriptions/${sub}/resourceGroups/app-rg/providers/Microsoft.Resources/deployments/${name}`;
      const r = o.record['result'] as Record<string, any>;
      assert.equal(r['id'], id);
      assert.equal(r['provisioningState'], 'Succeeded');
      assert.deepEqual(r['outputs'], { storageName: `store${mode}`, tier: 'Standard', answer: 42 });
      assert.deepEqual(r['outputResources'], [
        `/subscriptions/${sub}/resourceGroups/app-rg/providers/Microsoft.Storage/storageAccounts/store${mode}`,
        `/subscriptions/${sub}/resourceGroups/app-rg/providers/Microsoft.Network/virtualNetworks/vnet1`,
        `/subscriptions/${sub}/resourceGroups/app-rg/providers/Microsoft.Network/publicIPAddresses/pip1`,
      ]);
      // Operation states, in order, as lines (every mode)...
      const opLines = o.lines.filter((l) => /^Microsoft\.\w+\/\w+\/\w+: \w+$/.test(l));
      assert.deepEqual(opLines, [
        `Microsoft.Storage/storageAccounts/store${mode}: Running`,
        `Microsoft.Storage/storageAccounts/store${mode}: Succeeded`,
        'Microsoft.Network/virtualNetworks/vnet1: Running',
        'Microsoft.Network/virtualNetworks/vnet1: Succeeded',
        'Microsoft.Network/publicIPAddresses/pip1: Running',
        'Microsoft.Network/publicIPAddresses/pip1: Succeeded',
      ]);
      // ...and ends with the outputs.
      assert.deepEqual(o.lines.slice(-4), [
        `deployment ${name}: Succeeded`,
        `output storageName = "store${mode}"`,
        'output tier = "Standard"',
        'output answer = 42',
      ]);
      if (mode !== 'json') {
        // ...and as progress events (SSE `event: progress`, text `armhook: progress`).
        const ops = o.progress.filter((p) => p['operation'] === 'deployment-operation').map((p) => `${p['resourceName']}:${p['provisioningState']}`);
        assert.deepEqual(ops, [`store${mode}:Running`, `store${mode}:Succeeded`, 'vnet1:Running', 'vnet1:Succeeded', 'pip1:Running', 'pip1:Succeeded']);
        assert.equal(o.progress[0]?.['operation'], 'deployment');
        assert.equal(o.progress[0]?.['status'], 'accepted');
        assert.ok(o.progress.every((p) => p['id'] === id));
      }
      const put = env.arm.requests.find((q) => q.method === 'PUT' && q.path.endsWith(`/deployments/${name}`));
      assert.deepEqual((put?.body as { properties: unknown }).properties, {
        mode: 'Incremental',
        template: JSON.parse(body).template,
        parameters: { storageName: { value: `store${mode}` } },
      });
      await assertListedAsHandlerJob(o, 'azure/deployments/create', 'POST');
    });
  }

  test('a failed deployment: JSON mode 502, the failed operation named, done last in SSE', async () => {
    const body = JSON.stringify({
      template: template([
        { type: 'Microsoft.Network/virtualNetworks', name: 'vnet-ok' },
        { type: 'Microsoft.Storage/storageAccounts', name: 'will-fail' },
      ]),
      parameters: { storageName: 'x' },
    });
    const json = await call('json', 'POST', '/azure/deployments/create?rg=app-rg&name=broken-json', body);
    assert.equal(json.status, 502, json.raw);
    assert.equal(json.record['status'], 'failed');
    assert.equal(json.record['exitCode'], null);
    assert.equal(json.record['error']['code'], 'deployment_failed');
    assert.match(json.record['error']['message'], /will-fail/);
    const sse = await call('sse', 'POST', '/azure/deployments/create?rg=app-rg&name=broken-sse', body);
    assert.equal(sse.status, 200);
    assert.equal(sse.record['status'], 'failed');
    assert.ok(
      sse.events?.some((e) => e.event === 'stderr' && e.data.includes('will-fail')),
      'the error is on stderr before done',
    );
  });
});

describe('Prefer: respond-async', () => {
  test('202 + Location for a handler; the job then succeeds', async () => {
    env.arm.addVm('vm-rg', 'async-start', { powerState: 'deallocated' });
    const res = await fetchText(env.server, '/azure/vms/start?rg=vm-rg&name=async-start', { method: 'POST', headers: { prefer: 'respond-async' } });
    assert.equal(res.status, 202, res.body);
    const id = String(res.headers['armhook-job-id']);
    assert.equal(res.headers['location'], `/jobs/${id}`);
    // Follow the job's events to the end (no polling loop: the events stream ends with the job).
    const events = await fetchText(env.server, `/jobs/${id}/events`);
    const record = doneRecord(parseSse(events.body).events);
    assert.equal(record['status'], 'succeeded');
    assert.equal(record['result']['powerState'], 'running');
  });
});

describe('the job outlives its request', () => {
  test('a client that disconnects mid-LRO does not stop the job; GET /jobs/<id>/events replays it to done', async () => {
    env.arm.addVm('vm-rg', 'detached', { powerState: 'deallocated' });
    const res = await open(env.server, '/azure/vms/start?rg=vm-rg&name=detached', { method: 'POST' });
    const id = String(res.headers['armhook-job-id']);
    await readUntil(res, (t) => t.includes('event: progress'));
    res.destroy();
    const events = await fetchText(env.server, `/jobs/${id}/events`);
    const parsed = parseSse(events.body).events;
    const record = doneRecord(parsed);
    assert.equal(record['status'], 'succeeded');
    assert.equal(record['result']['powerState'], 'running');
    assert.deepEqual(
      parsed.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data).status),
      ['accepted', 'running', 'running', 'succeeded'],
    );
  });
});

describe('catalog', () => {
  test('GET /hooks lists every handler with its params, kind handler and its method', async () => {
    const res = await fetchText(env.server, '/hooks');
    assert.equal(res.status, 200, res.body);
    const hooks = res.json<{ hooks: Array<Record<string, any>> }>().hooks;
    const handlers = hooks.filter((h) => h['kind'] === 'handler');
    assert.deepEqual(
      handlers.map((h) => `${h['method']} ${h['path']}`),
      [
        'GET /azure/whoami',
        'GET /azure/groups',
        'POST /azure/groups/create',
        'POST /azure/groups/delete',
        'GET /azure/vms',
        'GET /azure/vms/show',
        'POST /azure/vms/start',
        'POST /azure/vms/stop',
        'POST /azure/vms/restart',
        'POST /azure/vms/deallocate',
        'POST /azure/vms/delete',
        'POST /azure/vms/run-command',
        'POST /azure/deployments/create',
      ],
    );
    const params = (path: string): Record<string, { required: boolean; pattern?: string }> =>
      Object.fromEntries(
        (handlers.find((h) => h['path'] === path)?.['params'] as Array<{ name: string; required: boolean; pattern?: string }>).map((p) => [p.name, p]),
      );
    assert.deepEqual(Object.keys(params('/azure/whoami')), []);
    assert.deepEqual(Object.keys(params('/azure/groups/create')).sort(), ['location', 'name']);
    assert.equal(params('/azure/groups/create')['name']?.required, true);
    assert.equal(params('/azure/groups/create')['location']?.required, false);
    assert.ok(params('/azure/groups/create')['name']?.pattern, 'patterns are shown');
    assert.equal(params('/azure/vms')['rg']?.required, false);
    for (const op of ['start', 'stop', 'restart', 'deallocate', 'delete']) {
      assert.deepEqual(Object.keys(params(`/azure/vms/${op}`)).sort(), ['name', 'rg']);
      assert.ok(Object.values(params(`/azure/vms/${op}`)).every((p) => p.required));
    }
    assert.deepEqual(Object.keys(params('/azure/vms/run-command')).sort(), ['command_id', 'name', 'rg', 'script']);
    assert.deepEqual(Object.keys(params('/azure/deployments/create')).sort(), ['name', 'rg']);
    for (const h of handlers) assert.ok(String(h['description']).length > 20, `${h['path']} has a description`);
  });
});

describe('secrets', () => {
  test('the token never reaches the server log', () => {
    assert.ok(!env.server.logs.text().includes('eyJ0eXAi'), 'no JWT in the log');
  });
});
