// Scripts get AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZURE_LOCATION from the VM's
// instance metadata (the IMDS fake), through the REAL server, once Azure is ready.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { curl, doneRecord, fetchText, parseSse } from '../helpers/server.ts';
import { startAzureServer, type AzureServerEnv } from './setup.ts';

let env: AzureServerEnv;

const SCRIPT = `#!/bin/sh
echo "sub=$AZURE_SUBSCRIPTION_ID"
echo "rg=$AZURE_RESOURCE_GROUP"
echo "loc=$AZURE_LOCATION"
echo "pod=\${AZURE_POD_IDENTITY_AUTHORITY_HOST:-unset}"
`;

before(async () => {
  env = await startAzureServer({
    imds: { compute: { subscriptionId: '12345678-aaaa-4bbb-8ccc-0123456789ab', resourceGroupName: 'scripts-rg', location: 'northeurope', name: 'scripts-vm' } },
    scripts: { 'env/show.sh': SCRIPT },
  });
});
after(async () => {
  await env?.close();
});

test('a script sees the instance-metadata variables (SSE)', async () => {
  const result = await curl(env.server, ['-X', 'POST', `${env.server.url}/env/show`]);
  assert.equal(result.code, 0, result.stderr);
  const { events } = parseSse(result.stdout);
  const record = doneRecord(events);
  assert.equal(record['status'], 'succeeded');
  assert.equal(record['exitCode'], 0);
  const lines = events.filter((e) => e.event === 'message').map((e) => e.data);
  // AZURE_POD_IDENTITY_AUTHORITY_HOST follows ARMHOOK_IMDS_ENDPOINT (the fake here), so a script's
  // identity library asks the same endpoint as armhook.
  assert.deepEqual(lines, ['sub=12345678-aaaa-4bbb-8ccc-0123456789ab', 'rg=scripts-rg', 'loc=northeurope', `pod=${env.imds.url}`]);
});

test('a script sees them in JSON mode too, and a parameter cannot override them', async () => {
  const res = await fetchText(env.server, '/env/show?azure_location=mars', { method: 'POST', headers: { accept: 'application/json' } });
  assert.equal(res.status, 200, res.body);
  const record = res.json<Record<string, any>>();
  assert.equal(record['output'], `sub=12345678-aaaa-4bbb-8ccc-0123456789ab\nrg=scripts-rg\nloc=northeurope\npod=${env.imds.url}\n`);
});
