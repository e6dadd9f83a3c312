// Handler errors through the REAL server: ARM failures mapped to the JSON-mode HTTP status
// (403/404/409 passed through, 502 otherwise) with a message a person can act on; bad parameters
// refused with 400 before a job or an ARM request exists; wrong methods; Last-Event-ID.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertJsonError, curlResponse, doneRecord, fetchText, listJobs, parseSse, type Response } from '../helpers/server.ts';
import { startAzureServer, type AzureServerEnv } from './setup.ts';

let env: AzureServerEnv;
let sub: string;

before(async () => {
  env = await startAzureServer({ arm: { inProgressPolls: 1 } });
  sub = env.imds.compute.subscriptionId;
  env.arm.addGroup('vm-rg');
  env.arm.addVm('vm-rg', 'web1', { powerState: 'running' });
  env.arm.addVm('vm-rg', 'off1', { powerState: 'deallocated' });
});
after(async () => {
  await env?.close();
});

const json = (path: string, method: 'GET' | 'POST' = 'POST', headers: Record<string, string> = {}): Promise<Response> =>
  fetchText(env.server, path, { method, headers: { accept: 'application/json', ...headers } });

/** A failed handler job in JSON mode: the record with `error`, the status mapped from it. */
function failedRecord(res: Response, status: number, code: string): Record<string, any> {
  assert.equal(res.status, status, res.body.slice(0, 2000));
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const record = res.json<Record<string, any>>();
  assert.equal(record['status'], 'failed');
  assert.equal(record['exitCode'], null);
  assert.equal(record['error']?.['code'], code, JSON.stringify(record['error']));
  assert.equal(record['id'], res.headers['armhook-job-id']);
  assert.ok(!/\bat .+\.ts:\d+/.test(res.body), 'never a stack trace');
  return record;
}

describe('ARM errors → HTTP status and an actionable message (JSON mode)', () => {
  test('403 → 403 naming the principal id, the scope, a role and the az role assignment command', async () => {
    env.arm.fail({ method: 'POST', path: '/virtualMachines/web1/start', status: 403 });
    try {
      const res = await json('/azure/vms/start?rg=vm-rg&name=web1');
      const record = failedRecord(res, 403, 'arm_forbidden');
      const message = String(record['error']['message']);
      const scope = `/subscriptions/${sub}/resourceGroups/vm-rg`;
      assert.ok(message.includes(env.imds.claims.oid), `principal id in: ${message}`);
      assert.ok(message.includes(scope), `scope in: ${message}`);
      assert.ok(message.includes('Virtual Machine Contributor'), `role in: ${message}`);
      assert.ok(message.includes(`az role assignment create --assignee ${env.imds.claims.oid} --role "Virtual Machine Contributor" --scope ${scope}`), message);
      assert.ok(message.includes('Microsoft.Compute/virtualMachines/start/action'), 'the missing permission');
      assert.equal(record['error']['principalId'], env.imds.claims.oid);
      assert.equal(record['error']['scope'], scope);
      // The output a curl user sees says it too.
      assert.ok(String(record['output']).includes('az role assignment create'), String(record['output']));
    } finally {
      env.arm.clearFailures();
    }
  });

  test('403 in SSE mode: 200 stream, the hint on stderr, done carries the error', async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 403 });
    try {
      const res = await curlResponse(env.server, [`${env.server.url}/azure/groups`]);
      assert.equal(res.status, 200);
      const { events } = parseSse(res.body);
      const record = doneRecord(events);
      assert.equal(record['status'], 'failed');
      assert.equal(record['error']['code'], 'arm_forbidden');
      assert.equal(record['error']['role'], 'Reader');
      const stderr = events
        .filter((e) => e.event === 'stderr')
        .map((e) => e.data)
        .join('\n');
      assert.ok(stderr.includes(`az role assignment create --assignee ${env.imds.claims.oid} --role "Reader" --scope /subscriptions/${sub}`), stderr);
    } finally {
      env.arm.clearFailures();
    }
  });

  test('list handlers keep ARM\'s own error message (not the SDK\'s "Pagination failed ...")', async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 403 });
    try {
      const res = await json('/azure/groups', 'GET');
      const record = failedRecord(res, 403, 'arm_forbidden');
      assert.doesNotMatch(String(record['error']['armMessage']), /^Pagination failed/, JSON.stringify(record['error']));
      assert.equal(record['error']['permission'], 'Microsoft.Resources/subscriptions/resourcegroups/read', "the missing permission, parsed from ARM's message");
    } finally {
      env.arm.clearFailures();
    }
    const missing = await json('/azure/vms?rg=missing-rg', 'GET');
    const r2 = failedRecord(missing, 404, 'arm_not_found');
    assert.match(r2['error']['message'], /Resource group 'missing-rg' could not be found/, "ARM's message is kept");
  });

  test('404 → 404 naming the resource', async () => {
    const res = await json('/azure/vms/start?rg=vm-rg&name=no-such-vm');
    const record = failedRecord(res, 404, 'arm_not_found');
    assert.match(record['error']['message'], /virtual machine no-such-vm in resource group vm-rg/);
    const missingGroup = await json('/azure/groups/delete?name=no-such-rg');
    const r2 = failedRecord(missingGroup, 404, 'arm_not_found');
    assert.match(r2['error']['message'], /resource group no-such-rg/);
  });

  test('409 → 409 (run-command on a deallocated VM; group in another location)', async () => {
    const res = await json('/azure/vms/run-command?rg=vm-rg&name=off1&script=uptime');
    const record = failedRecord(res, 409, 'arm_conflict');
    assert.match(record['error']['message'], /not running/);
    env.arm.addGroup('placed-rg', 'eastus');
    const conflict = await json('/azure/groups/create?name=placed-rg&location=westus');
    const r2 = failedRecord(conflict, 409, 'arm_conflict');
    assert.match(r2['error']['message'], /already exists in location 'eastus'/);
  });

  test('ARM 500 that persists → 502 after the SDK retries', async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 500 });
    const before = env.arm.requests.length;
    try {
      const res = await json('/azure/groups', 'GET');
      const record = failedRecord(res, 502, 'arm_unavailable');
      assert.match(record['error']['message'], /answered 500/);
      assert.match(record['error']['message'], /retried 2 times/);
      const lists = env.arm.requests.slice(before).filter((r) => r.method === 'GET' && /\/resourcegroups$/i.test(r.path));
      assert.equal(lists.length, 3, 'the first request and two retries (SERVER_AZURE_OPTIONS.retry.maxRetries = 2)');
    } finally {
      env.arm.clearFailures();
    }
  });

  test('ARM 429 that persists → reported after the retries (429 passed through, or 502), saying it was throttled', async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 429, headers: { 'retry-after': '0' } });
    const before = env.arm.requests.length;
    try {
      const res = await json('/azure/groups', 'GET');
      assert.ok(res.status === 429 || res.status === 502, `${res.status} ${res.body}`);
      const record = res.json<Record<string, any>>();
      assert.equal(record['status'], 'failed');
      assert.match(record['error']['message'], /throttl/i);
      const lists = env.arm.requests.slice(before).filter((r) => r.method === 'GET' && /\/resourcegroups$/i.test(r.path));
      assert.ok(lists.length >= 2, `retried (${lists.length} requests)`);
    } finally {
      env.arm.clearFailures();
    }
  });

  test('run-command whose script fails inside the VM → 500 (a script failure), output kept', async () => {
    const saved = env.arm.runCommandOutput;
    env.arm.runCommandOutput = () => [
      {
        code: 'ProvisioningState/failed',
        level: 'Error',
        displayStatus: 'Provisioning failed',
        message: 'Enable failed: \n[stdout]\npartial\n\n[stderr]\nboom\n',
      },
    ];
    try {
      const res = await json('/azure/vms/run-command?rg=vm-rg&name=web1&script=false');
      const record = failedRecord(res, 500, 'script_failed');
      assert.match(String(record['output']), /partial/);
      assert.match(String(record['output']), /boom/);
    } finally {
      env.arm.runCommandOutput = saved;
    }
  });

  test('ARM 500 once → retried, the job succeeds', async () => {
    env.arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 500, times: 1 });
    try {
      const res = await json('/azure/groups', 'GET');
      assert.equal(res.status, 200, res.body);
      assert.equal(res.json()['status'], 'succeeded');
    } finally {
      env.arm.clearFailures();
    }
  });
});

describe('refused before anything runs (no job, no ARM request)', () => {
  async function refused(
    request: { path: string; method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string },
    status: number,
    code?: string,
  ): Promise<{ error: string; message: string }> {
    const jobsBefore = (await listJobs(env.server)).length;
    const armBefore = env.arm.requests.length;
    const res = await fetchText(env.server, request.path, {
      method: request.method,
      headers: { accept: 'application/json', ...request.headers },
      ...(request.body !== undefined ? { body: request.body } : {}),
    });
    const body = assertJsonError(res, status, code);
    assert.equal(res.headers['armhook-job-id'], undefined, 'no job id: no job');
    assert.equal(env.arm.requests.length, armBefore, 'nothing reached ARM');
    assert.equal((await listJobs(env.server)).length, jobsBefore, 'no job was started');
    return body;
  }

  test('unknown parameter → 400 naming it and listing the known ones', async () => {
    const body = await refused({ path: '/azure/vms?rg=vm-rg&bogus=1', method: 'GET' }, 400, 'unknown_param');
    assert.match(body.message, /"bogus"/);
    assert.match(body.message, /\brg\b/);
    await refused({ path: '/azure/whoami?x=1', method: 'GET' }, 400, 'unknown_param');
  });

  test('missing required parameter → 400 naming it', async () => {
    const body = await refused({ path: '/azure/vms/start?rg=vm-rg', method: 'POST' }, 400, 'invalid_param');
    assert.match(body.message, /"name"/);
    await refused({ path: '/azure/groups/delete', method: 'POST' }, 400, 'invalid_param');
    await refused({ path: '/azure/deployments/create?rg=vm-rg', method: 'POST', body: '{}' }, 400, 'invalid_param');
  });

  test('invalid value → 400 naming the parameter', async () => {
    const slash = await refused({ path: `/azure/vms/start?rg=vm-rg&name=${encodeURIComponent('../../x')}`, method: 'POST' }, 400, 'invalid_param');
    assert.match(slash.message, /"name"/);
    await refused({ path: '/azure/groups/create?name=ok-rg&location=West%20Europe', method: 'POST' }, 400, 'invalid_param');
    await refused({ path: '/azure/vms/run-command?rg=vm-rg&name=web1&script=uptime&command_id=RunBatch', method: 'POST' }, 400, 'invalid_param');
    await refused({ path: `/azure/vms?rg=${encodeURIComponent('bad rg?')}`, method: 'GET' }, 400, 'invalid_param');
  });

  test('an invalid parameter name (not ^[a-z][a-z0-9_]*$) → 400', async () => {
    await refused({ path: '/azure/vms?RG=vm-rg', method: 'GET' }, 400);
  });

  test('parameters in a form body are validated too', async () => {
    await refused(
      { path: '/azure/vms/start', method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'rg=vm-rg&name=%2F%2F' },
      400,
      'invalid_param',
    );
  });

  test('Last-Event-ID on a handler POST → 409, pointing to /jobs/<id>/events', async () => {
    const body = await refused({ path: '/azure/vms/start?rg=vm-rg&name=web1', method: 'POST', headers: { 'last-event-id': '3' } }, 409, 'resume_not_run');
    assert.match(body.message, /\/jobs\/<id>\/events/);
  });

  test('Last-Event-ID on a handler GET → 409 too', async () => {
    await refused({ path: '/azure/groups', method: 'GET', headers: { 'last-event-id': '7' } }, 409, 'resume_not_run');
  });

  test('POST on a GET handler (/azure/whoami, /azure/vms) → JSON 404/405, never a stack trace or HTML', async () => {
    for (const path of ['/azure/whoami', '/azure/vms?rg=vm-rg', '/azure/groups']) {
      const jobsBefore = (await listJobs(env.server)).length;
      const armBefore = env.arm.requests.length;
      const res = await fetchText(env.server, path, { method: 'POST', headers: { accept: 'application/json' } });
      assert.ok(res.status === 404 || res.status === 405, `POST ${path}: ${res.status} ${res.body}`);
      assertJsonError(res, res.status);
      assert.ok(!/<html/i.test(res.body));
      assert.equal(env.arm.requests.length, armBefore);
      assert.equal((await listJobs(env.server)).length, jobsBefore);
    }
  });

  test('POST on a GET handler → 405 with Allow: GET', async () => {
    const res = await fetchText(env.server, '/azure/whoami', { method: 'POST', headers: { accept: 'application/json' } });
    assertJsonError(res, 405);
    assert.match(String(res.headers['allow']), /\bGET\b/);
  });

  test('GET on a POST handler (/azure/vms/start) → JSON 404/405 or its catalog entry, never runs', async () => {
    for (const path of ['/azure/vms/start?rg=vm-rg&name=web1', '/azure/groups/create?name=x', '/azure/deployments/create?rg=vm-rg&name=d']) {
      const jobsBefore = (await listJobs(env.server)).length;
      const armBefore = env.arm.requests.length;
      const res = await fetchText(env.server, path, { method: 'GET', headers: { accept: 'application/json' } });
      assert.ok([200, 404, 405].includes(res.status), `GET ${path}: ${res.status} ${res.body}`);
      if (res.status !== 200) assertJsonError(res, res.status);
      assert.ok(!/<html/i.test(res.body));
      assert.equal(env.arm.requests.length, armBefore, 'nothing reached ARM');
      assert.equal((await listJobs(env.server)).length, jobsBefore, 'no job');
    }
  });

  test('GET on a POST handler describes it (like GET on a script) or is a 405 with Allow: POST', async () => {
    const res = await fetchText(env.server, '/azure/vms/start', { headers: { accept: 'application/json' } });
    if (res.status === 200) {
      const d = res.json<Record<string, any>>();
      assert.equal(d['path'], '/azure/vms/start');
      assert.equal(d['kind'], 'handler');
    } else {
      assertJsonError(res, 405);
      assert.match(String(res.headers['allow']), /\bPOST\b/);
    }
  });

  test('HEAD on a handler never runs it', async () => {
    const armBefore = env.arm.requests.length;
    const jobsBefore = (await listJobs(env.server)).length;
    for (const path of ['/azure/whoami', '/azure/vms/start?rg=vm-rg&name=web1']) {
      const res = await fetchText(env.server, path, { method: 'HEAD' });
      assert.ok(res.status < 500, `HEAD ${path}: ${res.status}`);
    }
    assert.equal(env.arm.requests.length, armBefore);
    assert.equal((await listJobs(env.server)).length, jobsBefore);
  });
});

describe('bad deployment bodies', () => {
  // The handler's validateBody runs before the job is submitted: a body that is no deployment
  // document is refused like a bad parameter (400, no job, nothing sent to ARM).
  for (const [why, body, pattern] of [
    ['not JSON', '{not json', /not JSON/],
    ['empty', '', /empty/],
    ['no template', '{"parameters": {}}', /"template" must be a JSON object/],
    ['template without resources', '{"template": {"outputs": {}}}', /no "resources"/],
  ] as const) {
    test(`a body that is not a deployment document (${why}) → 400 bad_body, no job, nothing reaches ARM`, async () => {
      const hook = 'azure/deployments/create';
      const jobsBefore = (await listJobs(env.server, { hook })).length;
      const armBefore = env.arm.requests.length;
      const res = await fetchText(env.server, `/${hook}?rg=vm-rg&name=bad`, {
        method: 'POST',
        headers: { accept: 'application/json', 'content-type': 'application/json' },
        body,
      });
      const error = assertJsonError(res, 400, 'bad_body');
      assert.match(error.message, pattern);
      assert.equal(res.headers['armhook-job-id'], undefined, 'no job id: no job');
      assert.equal(env.arm.requests.length, armBefore, 'nothing reached ARM');
      assert.equal((await listJobs(env.server, { hook })).length, jobsBefore, 'GET /jobs has no job for it');
    });
  }

  test('a template ARM refuses (no resources list) → 400 from ARM, passed through', async () => {
    const res = await fetchText(env.server, '/azure/deployments/create?rg=vm-rg&name=bad2', {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/json' },
      body: JSON.stringify({ template: { $schema: 'x', resources: 'nope' } }),
    });
    assert.equal(res.status, 400, res.body);
    const record = res.json<Record<string, any>>();
    assert.equal(record['error']['code'], 'arm_bad_request');
    assert.match(record['error']['message'], /InvalidTemplate/);
  });
});
