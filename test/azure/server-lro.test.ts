// Cancel (DELETE /jobs/<id>) and timeout (X-Hook-Timeout) of running long-running handler jobs
// through the REAL server: the job ends cancelled / timed-out, its record says what may still be
// running in Azure, polling stops (the ARM fake sees no request for the operation after the job
// ended), and a deployment is cancelled in Azure.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { doneRecord, fetchText, listJobs, open, parseSse, streamReader } from '../helpers/server.ts';
import type { RecordedRequest } from '../fakes/arm.ts';
import { SERVER_AZURE_OPTIONS, startAzureServer, type AzureServerEnv } from './setup.ts';

let env: AzureServerEnv;
let sub: string;
const POLL_MS = SERVER_AZURE_OPTIONS.pollIntervalMs ?? 10;

before(async () => {
  env = await startAzureServer();
  sub = env.imds.compute.subscriptionId;
  env.arm.addGroup('ops-rg');
});
after(async () => {
  await env?.close();
});
beforeEach(() => {
  // Async operations never finish on their own; deployments stay Running.
  env.arm.inProgressPolls = 1_000_000;
  env.arm.pauseDeployments = true;
});

/** One request straight to the ARM fake (a round-trip through its event loop). */
function pingArm(): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${env.arm.url}/subscriptions/${sub}/resourcegroups/ops-rg`,
      { ca: env.pki.caCert, headers: { authorization: 'Bearer a.b.c' }, agent: false },
      (res) => {
        res.resume();
        res.on('end', resolve);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/**
 * Proves that no request matching `match` reaches the fake after the job ended: round-trips to
 * the fake (directly, and through the server with another handler job) until well over a poll
 * interval has passed, then compares the counts. Absence needs some time to pass; these round
 * trips are that time, not a synchronisation.
 */
async function assertNoMore(match: (r: RecordedRequest) => boolean, atDone: number, what: string): Promise<void> {
  const started = Date.now();
  for (let i = 0; i < 200 && Date.now() - started < POLL_MS * 10; i += 1) {
    await pingArm();
    if (i % 4 === 0) {
      const res = await fetchText(env.server, '/azure/groups', { headers: { accept: 'application/json' } });
      assert.equal(res.status, 200, res.body);
    }
  }
  const after = env.arm.requests.filter(match);
  assert.equal(after.length, atDone, `${what}: requests after the job ended: ${JSON.stringify(after.slice(atDone).map((r) => `${r.method} ${r.path}`))}`);
}

const asyncOpPolls = (r: RecordedRequest): boolean => /\/providers\/Microsoft\.Compute\/locations\/[^/]+\/(operations|operationResults)\//i.test(r.path);

/** Starts an SSE run, waits for its first progress event; returns the job id and the reader. */
async function startAndWaitForProgress(path: string, body?: string): Promise<{ jobId: string; reader: ReturnType<typeof streamReader> }> {
  const res = await open(env.server, path, {
    method: 'POST',
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body } : {}),
  });
  assert.equal(res.statusCode, 200);
  const jobId = String(res.headers['armhook-job-id']);
  const reader = streamReader(res);
  await reader.until((t) => /\nevent: progress\n/.test(t));
  return { jobId, reader };
}

describe('cancel (DELETE /jobs/<id>) of a running LRO', () => {
  test('VM start: cancelled, record says it may still run in Azure, polling stops', async () => {
    env.arm.addVm('ops-rg', 'held-start', { powerState: 'deallocated' });
    const { jobId, reader } = await startAndWaitForProgress('/azure/vms/start?rg=ops-rg&name=held-start');
    // At least one InProgress poll has been answered before we cancel.
    await reader.until((t) => t.includes('"status":"running"'));
    const del = await fetchText(env.server, `/jobs/${jobId}`, { method: 'DELETE' });
    const atDone = env.arm.requests.filter(asyncOpPolls).length;
    assert.equal(del.status, 200, del.body);
    const deleted = del.json<Record<string, any>>();
    assert.equal(deleted['status'], 'cancelled');

    const record = doneRecord(parseSse(await reader.end()).events);
    assert.equal(record['id'], jobId);
    assert.equal(record['status'], 'cancelled');
    assert.equal(record['exitCode'], null);
    assert.equal(record['error']['code'], 'cancelled');
    assert.match(record['error']['message'], /may still be running in Azure/);
    assert.match(record['error']['message'], /start virtual machine held-start/);
    assert.equal(record['error']['mayStillBeRunning'], true);
    assert.ok(atDone >= 1, 'it was polling');
    assert.equal(env.arm.vms.get('ops-rg/held-start')?.powerState, 'starting', 'the fake never completed it');
    await assertNoMore(asyncOpPolls, atDone, 'VM start polls');

    const stored = await fetchText(env.server, `/jobs/${jobId}`);
    assert.equal(stored.json()['status'], 'cancelled');
  });

  test('resource group delete (Location polling): cancelled, polling stops', async () => {
    env.arm.addGroup('held-rg');
    const { jobId, reader } = await startAndWaitForProgress('/azure/groups/delete?name=held-rg');
    const del = await fetchText(env.server, `/jobs/${jobId}`, { method: 'DELETE' });
    assert.equal(del.status, 200, del.body);
    const groupPolls = (r: RecordedRequest): boolean => /\/operationresults\//i.test(r.path) && !/Microsoft\.Compute/i.test(r.path);
    const atDone = env.arm.requests.filter(groupPolls).length;
    const record = doneRecord(parseSse(await reader.end()).events);
    assert.equal(record['status'], 'cancelled');
    assert.match(record['error']['message'], /may still be running in Azure/);
    assert.equal(env.arm.groups.has('held-rg'), true);
    await assertNoMore(groupPolls, atDone, 'group delete polls');
  });

  test('JSON mode: a cancelled job answers 409 with the record', async () => {
    env.arm.addVm('ops-rg', 'held-json', { powerState: 'running' });
    const pending = fetchText(env.server, '/azure/vms/restart?rg=ops-rg&name=held-json', { method: 'POST', headers: { accept: 'application/json' } });
    // The job is polling once the fake has answered a poll of its operation.
    const post = await env.arm.waitFor((r) => r.method === 'POST' && /\/virtualMachines\/held-json\/restart$/i.test(r.path));
    await env.arm.waitFor((r) => r.seq > post.seq && asyncOpPolls(r) && r.status === 200);
    const running = await listJobs(env.server, { hook: 'azure/vms/restart' });
    const job = running.find((j) => j['status'] === 'running');
    assert.ok(job, JSON.stringify(running));
    const del = await fetchText(env.server, `/jobs/${job['id']}`, { method: 'DELETE' });
    assert.equal(del.status, 200, del.body);
    const res = await pending;
    assert.equal(res.status, 409, res.body);
    assert.equal(res.headers['armhook-job-id'], job['id']);
    const record = res.json<Record<string, any>>();
    assert.equal(record['status'], 'cancelled');
    assert.match(record['error']['message'], /may still be running in Azure/);
  });

  test('deployment: cancelled in Azure too, polling stops, the record says what may still run', async () => {
    const body = JSON.stringify({
      template: {
        $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#',
        contentVersion: '1.0.0.0',
        resources: [
          { type: 'Microsoft.Network/virtualNetworks', name: 'vnet1' },
          { type: 'Microsoft.Storage/storageAccounts', name: 'store1' },
        ],
      },
      parameters: {},
    });
    const { jobId, reader } = await startAndWaitForProgress('/azure/deployments/create?rg=ops-rg&name=held-deploy', body);
    const del = await fetchText(env.server, `/jobs/${jobId}`, { method: 'DELETE' });
    assert.equal(del.status, 200, del.body);
    const deploymentPolls = (r: RecordedRequest): boolean => r.method === 'GET' && /\/deployments\/held-deploy(\/|$)/i.test(r.path);
    const atDone = env.arm.requests.filter(deploymentPolls).length;

    const record = doneRecord(parseSse(await reader.end()).events);
    assert.equal(record['status'], 'cancelled');
    assert.equal(record['error']['code'], 'cancelled');
    assert.equal(record['error']['cancelRequested'], true);
    assert.equal(record['error']['mayStillBeRunning'], true);
    assert.match(record['error']['message'], /cancellation was requested in Azure/);
    assert.match(record['error']['message'], /deployment held-deploy in resource group ops-rg/);

    const cancel = env.arm.requests.filter((r) => r.method === 'POST' && /\/deployments\/held-deploy\/cancel$/i.test(r.path));
    assert.equal(cancel.length, 1, 'the fake received the cancel call');
    assert.equal(cancel[0]?.status, 204);
    assert.equal(env.arm.deployments.get('ops-rg/held-deploy')?.state, 'Canceled');
    await assertNoMore(deploymentPolls, atDone, 'deployment polls');
  });

  test('DELETE of a job that already ended → 409', async () => {
    const res = await fetchText(env.server, '/azure/whoami', { headers: { accept: 'application/json' } });
    const id = String(res.headers['armhook-job-id']);
    const del = await fetchText(env.server, `/jobs/${id}`, { method: 'DELETE' });
    assert.equal(del.status, 409, del.body);
    assert.equal(del.json()['error'], 'job_ended');
  });
});

describe('timeout (X-Hook-Timeout) of a running LRO', () => {
  test('VM start with X-Hook-Timeout: 1 → timed-out, JSON 504, polling stops', async () => {
    env.arm.addVm('ops-rg', 'held-timeout', { powerState: 'deallocated' });
    const res = await fetchText(env.server, '/azure/vms/start?rg=ops-rg&name=held-timeout', {
      method: 'POST',
      headers: { accept: 'application/json', 'x-hook-timeout': '1' },
    });
    const atDone = env.arm.requests.filter(asyncOpPolls).length;
    assert.equal(res.status, 504, res.body);
    const record = res.json<Record<string, any>>();
    assert.equal(record['status'], 'timed-out');
    assert.equal(record['exitCode'], null);
    assert.equal(record['error']['code'], 'timed_out');
    assert.match(record['error']['message'], /timed out after 1 s/);
    assert.match(record['error']['message'], /may still be running in Azure/);
    assert.equal(record['error']['mayStillBeRunning'], true);
    await assertNoMore(asyncOpPolls, atDone, 'VM start polls after the timeout');
  });

  test('deployment with X-Hook-Timeout: 1 (SSE) → timed-out and cancelled in Azure', async () => {
    const body = JSON.stringify({
      template: { $schema: 'x', contentVersion: '1.0.0.0', resources: [{ type: 'Microsoft.Network/virtualNetworks', name: 'vnet-slow' }] },
    });
    const res = await open(env.server, '/azure/deployments/create?rg=ops-rg&name=slow-deploy', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hook-timeout': '1' },
      body,
    });
    const text = await streamReader(res).end();
    const record = doneRecord(parseSse(text).events);
    assert.equal(record['status'], 'timed-out');
    assert.equal(record['error']['cancelRequested'], true);
    assert.match(record['error']['message'], /timed out after 1 s/);
    assert.ok(
      env.arm.requests.some((r) => r.method === 'POST' && /\/deployments\/slow-deploy\/cancel$/i.test(r.path)),
      'cancel sent to ARM',
    );
    assert.equal(env.arm.deployments.get('ops-rg/slow-deploy')?.state, 'Canceled');
  });
});
