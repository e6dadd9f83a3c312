// azure/deployments/create end to end: template body → deployments client → ARM fake; each
// deployment operation's state streamed in order; outputs in the result; bad bodies; abort → cancel.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createAzure } from '../../server/azure/index.ts';
import { AppError } from '../../server/errors.ts';
import { silentLogger, startAzureEnv, type AzureEnv } from './setup.ts';

let env: AzureEnv;
let sub: string;

before(async () => {
  env = await startAzureEnv();
  sub = env.imds.compute.subscriptionId;
  env.arm.addGroup('app-rg');
});
after(async () => {
  await env?.close();
});

const template = (resources: Array<{ type: string; name: string }>, outputs: Record<string, unknown> = {}): Record<string, unknown> => ({
  $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#',
  contentVersion: '1.0.0.0',
  parameters: { storageName: { type: 'string' }, tier: { type: 'string', defaultValue: 'Standard' } },
  resources,
  outputs,
});

const opEvents = (progress: Array<Record<string, unknown>>): string[] =>
  progress.filter((p) => p['operation'] === 'deployment-operation').map((p) => `${p['resourceName'] as string}:${p['provisioningState'] as string}`);

describe('deployments/create', () => {
  test('streams every operation state in order and ends with the template outputs', async () => {
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
      parameters: { storageName: { value: 'appstore1' } },
    });
    const { result, progress, lines } = await env.run('azure/deployments/create', { rg: 'app-rg', name: 'release-1' }, { body });

    assert.deepEqual(opEvents(progress), ['appstore1:Running', 'appstore1:Succeeded', 'vnet1:Running', 'vnet1:Succeeded', 'pip1:Running', 'pip1:Succeeded']);
    const first = progress.find((p) => p['operation'] === 'deployment-operation');
    assert.equal(first?.['resourceType'], 'Microsoft.Storage/storageAccounts');
    assert.equal(first?.['id'], `/subscriptions/${sub}/resourceGroups/app-rg/providers/Microsoft.Resources/deployments/release-1`);
    assert.equal(progress[0]?.['status'], 'accepted');
    assert.deepEqual(result, {
      id: `/subscriptions/${sub}/resourceGroups/app-rg/providers/Microsoft.Resources/deployments/release-1`,
      name: 'release-1',
      resourceGroup: 'app-rg',
      provisioningState: 'Succeeded',
      outputs: { storageName: 'appstore1', tier: 'Standard', answer: 42 },
      outputResources: [
        `/subscriptions/${sub}/resourceGroups/app-rg/providers/Microsoft.Storage/storageAccounts/appstore1`,
        `/subscriptions/${sub}/resourceGroups/app-rg/providers/Microsoft.Network/virtualNetworks/vnet1`,
        `/subscriptions/${sub}/resourceGroups/app-rg/providers/Microsoft.Network/publicIPAddresses/pip1`,
      ],
      correlationId: (result as { correlationId: string }).correlationId,
      duration: 'PT1S',
    });
    assert.ok(lines.includes('Microsoft.Network/virtualNetworks/vnet1: Succeeded'));
    assert.deepEqual(lines.slice(-4), [
      'deployment release-1: Succeeded',
      'output storageName = "appstore1"',
      'output tier = "Standard"',
      'output answer = 42',
    ]);
    assert.ok(lines.includes('output answer = 42'));

    const put = env.arm.requests.find((r) => r.method === 'PUT' && r.path.endsWith('/deployments/release-1'));
    assert.deepEqual((put?.body as { properties: unknown }).properties, {
      mode: 'Incremental',
      template: JSON.parse(body).template,
      parameters: { storageName: { value: 'appstore1' } },
    });
  });

  test('plain parameter values and a parameter file are accepted', async () => {
    const t = template([{ type: 'Microsoft.Storage/storageAccounts', name: "[parameters('storageName')]" }], {
      storageName: { type: 'string', value: "[parameters('storageName')]" },
    });
    const plain = await env.run(
      'azure/deployments/create',
      { rg: 'app-rg', name: 'plain' },
      { body: JSON.stringify({ template: t, parameters: { storageName: 'plainstore' } }) },
    );
    assert.deepEqual((plain.result as { outputs: unknown }).outputs, { storageName: 'plainstore' });
    const file = {
      $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#',
      contentVersion: '1.0.0.0',
      parameters: { storageName: { value: 'filestore' } },
    };
    const fromFile = await env.run('azure/deployments/create', { rg: 'app-rg', name: 'file' }, { body: JSON.stringify({ template: t, parameters: file }) });
    assert.deepEqual((fromFile.result as { outputs: unknown }).outputs, { storageName: 'filestore' });
  });

  test('a failed operation fails the job with 502 naming the resource, after streaming its state', async () => {
    const body = JSON.stringify({
      template: template([
        { type: 'Microsoft.Network/virtualNetworks', name: 'vnet-ok' },
        { type: 'Microsoft.Storage/storageAccounts', name: 'will-fail' },
        { type: 'Microsoft.Network/publicIPAddresses', name: 'never' },
      ]),
      parameters: { storageName: 'x' },
    });
    const { error, progress } = await env.runFailing('azure/deployments/create', { rg: 'app-rg', name: 'broken' }, { body });
    assert.deepEqual(opEvents(progress), ['vnet-ok:Running', 'vnet-ok:Succeeded', 'will-fail:Running', 'will-fail:Failed']);
    assert.equal(error.status, 502);
    assert.equal(error.code, 'deployment_failed');
    assert.match(error.message, /deployment broken in resource group app-rg failed/);
    assert.match(error.message, /Microsoft\.Storage\/storageAccounts\/will-fail: InvalidResourceName/);
    const failed = error.details?.['failedOperations'] as Array<{ resourceName: string }>;
    assert.deepEqual(
      failed.map((f) => f.resourceName),
      ['will-fail'],
    );
  });

  for (const [why, body, pattern] of [
    ['empty body', '', /empty/],
    ['not JSON', '{"template": ', /not JSON/],
    ['an array', '[1,2]', /JSON object/],
    ['no template', '{"parameters": {}}', /"template" must be a JSON object/],
    ['template without resources', '{"template": {"outputs": {}}}', /no "resources"/],
    ['parameters not an object', '{"template": {"resources": []}, "parameters": [1]}', /"parameters" must be a JSON object/],
  ] as const) {
    test(`bad body (${why}) is a 400 and nothing reaches ARM`, async () => {
      const before = env.arm.requests.length;
      const { error } = await env.runFailing('azure/deployments/create', { rg: 'app-rg', name: 'bad' }, { body });
      assert.equal(error.status, 400);
      assert.equal(error.code, 'bad_body');
      assert.match(error.message, pattern);
      assert.equal(env.arm.requests.length, before);
    });
  }

  test('validateBody refuses the same bodies before a job exists (400 bad_body), and accepts good ones', async () => {
    const handler = (await env.azure.loadHandlers()).find((h) => h.path === 'azure/deployments/create');
    assert.equal(typeof handler?.validateBody, 'function', "the service's bound handler exposes validateBody");
    const before = env.arm.requests.length;
    for (const bad of ['', '{"template": ', '[1,2]', '{"parameters": {}}', '{"template": {"outputs": {}}}']) {
      assert.throws(
        () => handler?.validateBody?.(Buffer.from(bad)),
        (err: unknown) => err instanceof AppError && err.status === 400 && err.code === 'bad_body',
        bad,
      );
    }
    handler?.validateBody?.(Buffer.from(JSON.stringify({ template: template([]), parameters: { storageName: 'x' } })));
    handler?.validateBody?.(Buffer.from(JSON.stringify(template([]))));
    assert.equal(env.arm.requests.length, before, 'nothing reached ARM');
    // Only handlers that read a body have it.
    assert.deepEqual(
      (await env.azure.loadHandlers()).filter((h) => h.validateBody).map((h) => h.path),
      ['azure/deployments/create'],
    );
  });

  test('validateBody needs neither readiness nor clients', async () => {
    const azure = createAzure({ imdsEndpoint: 'http://127.0.0.1:9', armEndpoint: 'https://127.0.0.1:9', log: silentLogger() });
    try {
      const handler = (await azure.loadHandlers()).find((h) => h.path === 'azure/deployments/create');
      assert.equal(azure.readiness().ready, false);
      assert.throws(() => handler?.validateBody?.(Buffer.from('nope')), { status: 400, code: 'bad_body' });
      handler?.validateBody?.(Buffer.from('{"template": {"resources": []}}'));
    } finally {
      azure.close();
    }
  });

  test('a bare template (no wrapper) is deployed as is', async () => {
    const t = template([{ type: 'Microsoft.Network/virtualNetworks', name: 'bare' }]);
    const { result } = await env.run('azure/deployments/create', { rg: 'app-rg', name: 'bare' }, { body: JSON.stringify(t) });
    assert.equal((result as { provisioningState: string }).provisioningState, 'Succeeded');
  });

  test('ARM refusing the template is a 400 with its code', async () => {
    env.arm.fail({
      method: 'PUT',
      path: '/deployments/rejected',
      status: 400,
      code: 'InvalidTemplate',
      message: "Deployment template validation failed: 'x'",
      times: 1,
    });
    const { error } = await env.runFailing(
      'azure/deployments/create',
      { rg: 'app-rg', name: 'rejected' },
      { body: JSON.stringify({ template: template([]) }) },
    );
    assert.equal(error.status, 400);
    assert.equal(error.code, 'arm_bad_request');
    assert.match(error.message, /InvalidTemplate/);
  });

  test('abort: polling stops, the deployment is cancelled in Azure, the error says what may still run', async () => {
    env.arm.pauseDeployments = true;
    try {
      const controller = new AbortController();
      const from = env.arm.requests.length;
      const body = JSON.stringify({ template: template([{ type: 'Microsoft.Network/virtualNetworks', name: 'slow' }]) });
      // Abort once the handler has streamed the first operation (the deployment is Running in ARM).
      const { error, progress } = await env.runFailing(
        'azure/deployments/create',
        { rg: 'app-rg', name: 'cancelled' },
        {
          body,
          signal: controller.signal,
          onEvent: (e) => {
            if (e.kind === 'progress' && e.data['operation'] === 'deployment-operation') controller.abort(new Error('job cancelled'));
          },
        },
      );
      const settledAt = env.arm.requests.length;

      assert.equal(error.code, 'aborted');
      assert.equal(error.details?.['cancelRequested'], true);
      assert.equal(error.details?.['mayStillBeRunning'], true);
      assert.match(error.message, /cancellation was requested in Azure/);
      assert.deepEqual(opEvents(progress), ['slow:Running']);
      const cancel = env.arm.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/deployments/cancelled/cancel'));
      assert.equal(cancel.length, 1);
      assert.equal(cancel[0]?.status, 204);
      assert.equal(env.arm.deployments.get('app-rg/cancelled')?.state, 'Canceled');

      // No poll of any kind after the handler returned, while a control operation polls 25 times.
      await env.assertQuietAfter(from, settledAt, ['cancelled']);
    } finally {
      env.arm.pauseDeployments = false;
    }
  });

  test('abort after the deployment already finished: cancel refused, reported', async () => {
    // Run one to completion, then "abort" a second identical run before it sends anything.
    const controller = new AbortController();
    controller.abort(new Error('timed out'));
    const before = env.arm.requests.length;
    const { error } = await env.runFailing(
      'azure/deployments/create',
      { rg: 'app-rg', name: 'release-1' },
      {
        body: JSON.stringify({ template: template([]) }),
        signal: controller.signal,
      },
    );
    assert.equal(error.code, 'aborted');
    const sent = env.arm.requests.slice(before);
    // Nothing but the cancel attempt reached ARM (the PUT was never sent with an aborted signal).
    assert.deepEqual(
      sent.map((r) => `${r.method} ${r.status}`),
      ['POST 409'],
    );
    assert.equal(error.details?.['cancelRequested'], false);
    assert.match(String(error.details?.['cancelError']), /DeploymentCannotBeCancelled/);
  });
});
