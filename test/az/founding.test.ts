// The founding example with the real Azure CLI: the script exactly as first published (plus
// `# @params any` and `# @param pw secret`), called with curl through armhook, against loopback
// fakes of IMDS (MSI_ENDPOINT's POST form) and Resource Manager (a custom cloud registered once in
// ARMHOOK_AZ_CONFIG_TEMPLATE, with the hybrid profile Debian's az needs for `az vm create`).
//
// Where the machine allows it, this file runs inside a network namespace that has only loopback
// (`unshare -n`), so nothing az does can reach out; az's traffic goes through a recording proxy
// (ARMHOOK_PASS_ENV=HTTPS_PROXY,HTTP_PROXY) that forwards only to loopback, so the test sees every
// destination az tried. The CLI is slow to start (python), so the file keeps its az runs few: two
// to register the cloud, three per founding job, three for the token and telemetry probe.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ARM_AUDIENCE, startArmFake, type ArmFake } from '../fakes/arm.ts';
import { startImdsFake, type ImdsFake } from '../fakes/imds.ts';
import { startRecordingProxy, type RecordingProxy } from '../fakes/proxy.ts';
import { writeTestPki } from '../helpers/certs.ts';
import { curl, doneRecord, parseSse, readTree, startServer, type SseEvent, type TestServer } from '../helpers/server.ts';
import { isolatedNetwork } from './netns.ts';

const isolation = isolatedNetwork(import.meta.filename);
const execFileAsync = promisify(execFile);

/** As first published, plus the two header lines that mark pw secret and keep the other names. */
const PUBLISHED = `#!/bin/bash
# @params any
# @param pw secret
echo "Authenticating...\`az login --identity\`"
echo "Creating the resource group...\`az group create -n $rg -l westeurope\`"
echo "Creating the vm...\`az vm create --no-wait --size Standard_B1s --resource-group $rg --name $vmname --image win2016datacenter --admin-username azureuser --admin-password $pw\`"
`;

/** One job that prints a token and its own AZURE_CONFIG_DIR: what must be masked, and what telemetry left. */
const PROBE = `#!/bin/bash
set -euo pipefail
az login --identity --output none
az account get-access-token
echo "--- config"
cat "$AZURE_CONFIG_DIR/config"
echo "--- files"
ls -A "$AZURE_CONFIG_DIR"
`;

const az = spawnSync('az', ['version', '--output', 'none'], { stdio: 'ignore' });
const skip =
  az.error || az.status !== 0
    ? "the Azure CLI (az) is not installed: test/ensure-tools.sh installs Debian's azure-cli where it may (as root with apt-get)"
    : false;

let root: string;
let imds: ImdsFake;
let arm: ArmFake;
let proxy: RecordingProxy;
let server: TestServer;
let caPath: string;
const registration: string[] = [];

before(async () => {
  if (skip) return;
  root = await mkdtemp(join(tmpdir(), 'armhook-az-'));
  const pki = await writeTestPki(root);
  caPath = pki.caPath;
  imds = await startImdsFake();
  arm = await startArmFake({ cert: pki.serverCert, key: pki.serverKey, subscriptionId: imds.compute.subscriptionId });
  proxy = await startRecordingProxy();

  // What an operator does once: register the cloud in the template (telemetry off for this run too).
  const template = join(root, 'az-template');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: root,
    AZURE_CONFIG_DIR: template,
    REQUESTS_CA_BUNDLE: caPath,
    AZURE_CORE_COLLECT_TELEMETRY: 'false',
  };
  for (const args of [
    ['cloud', 'register', '--name', 'armfake', '--endpoint-resource-manager', `${arm.url}/`, '--profile', '2020-09-01-hybrid'],
    ['cloud', 'set', '--name', 'armfake'],
  ]) {
    // Asynchronously: the fakes answer from this process's event loop.
    const run = await execFileAsync('az', args, { env }).catch((err: { code?: number; stderr?: string }) => err);
    registration.push(`az ${args.join(' ')}: ${'code' in run ? run.code : 0} ${run.stderr ?? ''}`);
    assert.ok(!('code' in run) || run.code === undefined, registration.join('\n'));
  }

  // The proxy variables are armhook's environment while it starts (ARMHOOK_PASS_ENV reads them
  // then), not the test's: curl, the test's client, would use them too.
  process.env.HTTPS_PROXY = proxy.url;
  process.env.HTTP_PROXY = proxy.url;
  try {
    const shipped = await readFile(join(import.meta.dirname, '..', '..', 'scripts', 'vm', 'create.sh'), 'utf8');
    server = await startServer({
      scripts: { 'vm/create.sh': PUBLISHED, 'vm/create-shipped.sh': shipped, 'probe.sh': PROBE },
      config: {
        workers: 3,
        imdsEndpoint: imds.url,
        armEndpoint: arm.url,
        armCaFile: caPath,
        azConfigTemplate: template,
        passEnv: ['HTTPS_PROXY', 'HTTP_PROXY'],
      },
    });
  } finally {
    delete process.env.HTTPS_PROXY;
    delete process.env.HTTP_PROXY;
  }
});

after(async () => {
  if (skip) return;
  await server?.close();
  await proxy?.close();
  await arm?.close();
  await imds?.close();
  await rm(root, { recursive: true, force: true });
});

/** stdout lines of a stream (the default event), as the caller's terminal shows them. */
const stdoutLines = (events: SseEvent[]): string[] => events.filter((e) => e.event === 'message').map((e) => e.data);

/** The JSON az printed right after `label` (a step's name), up to the line that closes it. */
function jsonAfter(lines: string[], label: string): unknown {
  const start = lines.findIndex((l) => l.startsWith(label));
  assert.ok(start >= 0, `"${label}" in:\n${lines.join('\n')}`);
  const first = (lines[start] ?? '').slice(label.length);
  const closing = first === '[' ? ']' : '}';
  const end = lines.findIndex((l, i) => i > start && l === closing);
  return JSON.parse([first, ...lines.slice(start + 1, end + 1)].join('\n'));
}

test("the founding curl call, three at once: az login's JSON, the group, the VM request; pw masked everywhere", { skip }, async (t) => {
  t.diagnostic(isolation);
  const calls = [
    { hook: 'vm/create', rg: 'founding-rg1', vmname: 'myvm1', pw: 'Founding-Pa55word-one!' },
    { hook: 'vm/create', rg: 'founding-rg2', vmname: 'myvm2', pw: 'Founding-Pa55word-two!' },
    { hook: 'vm/create-shipped', rg: 'founding-rg3', vmname: 'myvm3', pw: 'Founding-Pa55word-three!' },
  ];
  const results = await Promise.all(
    calls.map((c) => curl(server, ['-XPOST', `${server.url}/${c.hook}?vmname=${c.vmname}&rg=${c.rg}&pw=${encodeURIComponent(c.pw)}`])),
  );
  const records = results.map((r) => doneRecord(parseSse(r.stdout).events));

  for (const [i, call] of calls.entries()) {
    const { stdout } = results[i] ?? assert.fail();
    const record = records[i] ?? assert.fail();
    const events = parseSse(stdout).events;
    assert.equal(record.status, 'succeeded', stdout);
    assert.equal(record.exitCode, 0);
    assert.equal(record.params.pw, '***');
    assert.equal(record.params.rg, call.rg);
    const lines = stdoutLines(events);
    assert.deepEqual(jsonAfter(lines, 'Authenticating...'), [
      {
        environmentName: 'armfake',
        id: imds.compute.subscriptionId,
        isDefault: true,
        name: 'armhook fake subscription',
        state: 'Enabled',
        tenantId: imds.claims.tid,
        user: { assignedIdentityInfo: 'MSI', name: 'systemAssignedIdentity', type: 'servicePrincipal' },
      },
    ]);
    const group = jsonAfter(lines, 'Creating the resource group...') as Record<string, any>;
    assert.equal(group.id, `/subscriptions/${imds.compute.subscriptionId}/resourceGroups/${call.rg}`);
    assert.equal(group.location, 'westeurope');
    assert.deepEqual(group.properties, { provisioningState: 'Succeeded' });
    assert.equal(lines.at(-1), 'Creating the vm...', '--no-wait prints nothing after the step name');
  }
  // The three jobs overlapped, each with its own AZURE_CONFIG_DIR (token caches never collided).
  const latestStart = Math.max(...records.map((r) => Date.parse(r.startedAt)));
  assert.ok(
    records.every((r) => Date.parse(r.endedAt) > latestStart),
    JSON.stringify(records.map((r) => [r.startedAt, r.endedAt])),
  );

  // Resource Manager saw each group and each VM deployment, with a bearer token from the IMDS fake.
  for (const call of calls) {
    assert.ok(arm.groups.has(call.rg), call.rg);
    const deployment = [...arm.deployments.values()].find((d) => d.rg === call.rg);
    assert.ok(deployment, `a VM deployment in ${call.rg}`);
  }
  assert.ok(
    arm.requests.some((r) => r.method === 'GET' && r.path.replace(/^\/+/, '/') === '/metadata/endpoints'),
    "az cloud register read the cloud's endpoints",
  );
  assert.ok(arm.requests.some((r) => r.method === 'GET' && r.path === '/subscriptions' && r.bearer));
  // az logged in through MSI_ENDPOINT's form: POST, resource in the body, for the cloud's audience.
  const azTokens = imds.tokenRequests.filter((r) => r.method === 'POST');
  assert.ok(azTokens.length >= calls.length, JSON.stringify(imds.tokenRequests));
  assert.ok(azTokens.every((r) => r.resource === ARM_AUDIENCE && r.path === '/metadata/identity/oauth2/token'));

  // No password in any stream, record, replay, job file or log line.
  const pws = calls.map((c) => c.pw);
  const texts: Array<[string, string]> = results.map((r, i) => [`stream ${i}`, r.stdout]);
  for (const record of records) {
    texts.push([`record ${record.id}`, (await curl(server, [`${server.url}/jobs/${record.id}`])).stdout]);
    texts.push([`replay ${record.id}`, (await curl(server, [`${server.url}/jobs/${record.id}/events`])).stdout]);
    texts.push([`log ${record.id}`, (await curl(server, [`${server.url}/jobs/${record.id}/log`])).stdout]);
  }
  texts.push(['job list', (await curl(server, [`${server.url}/jobs`])).stdout]);
  texts.push(['data dir', (await readTree(server.dataDir)).toString('latin1')]);
  texts.push(['server log', server.logs.text()]);
  for (const [where, text] of texts) {
    for (const pw of pws) assert.ok(!text.includes(pw), `no pw in the ${where}`);
    for (const token of imds.issuedTokens) assert.ok(!text.includes(token), `no token in the ${where}`);
  }
});

test("az account get-access-token is masked; the job's config has telemetry off and az saved no telemetry; az reached only the fakes", { skip }, async (t) => {
  t.diagnostic(isolation);
  const result = await curl(server, ['-XPOST', `${server.url}/probe`]);
  const events = parseSse(result.stdout).events;
  const record = doneRecord(events);
  assert.equal(record.status, 'succeeded', result.stdout);
  const lines = stdoutLines(events);
  const token = jsonAfter(lines, '') as Record<string, string>;
  assert.equal(token.accessToken, '***');
  assert.equal(token.tokenType, 'Bearer');
  assert.equal(token.subscription, imds.compute.subscriptionId);
  // What az read: the template's cloud, and armhook's telemetry line in the one [core] section.
  const config = lines.slice(lines.indexOf('--- config') + 1, lines.indexOf('--- files'));
  assert.ok(config.includes('[core]') && config.includes('collect_telemetry = false'), config.join('\n'));
  assert.ok(config.includes('name = armfake'), config.join('\n'));
  assert.equal(config.filter((l) => l === '[core]').length, 1);
  // With telemetry on, az saves each command's record under telemetry/ and logs to telemetry.txt
  // before starting its uploader; neither exists, while the login's own files do.
  const files = lines.slice(lines.indexOf('--- files') + 1);
  assert.ok(files.includes('azureProfile.json') && files.includes('clouds.config'), files.join(' '));
  assert.ok(!files.some((f) => f.startsWith('telemetry')), files.join(' '));

  const stored = (await readTree(server.dataDir)).toString('latin1');
  const replay = (await curl(server, [`${server.url}/jobs/${record.id}/events`])).stdout;
  assert.ok(imds.issuedTokens.length > 0);
  for (const issued of imds.issuedTokens) {
    for (const [where, text] of [
      ['stream', result.stdout],
      ['replay', replay],
      ['data dir', stored],
      ['server log', server.logs.text()],
    ] as const) {
      assert.ok(!text.includes(issued), `no token in the ${where}`);
    }
  }

  // Every connection az made went through the recording proxy, and only to the fakes.
  const fakes = new Set([new URL(imds.url).host, new URL(arm.url).host]);
  assert.ok(
    proxy.requests.some((r) => r.method === 'CONNECT' && r.target === new URL(arm.url).host),
    'az used the proxy for Resource Manager',
  );
  assert.ok(
    proxy.requests.some((r) => r.method === 'POST' && r.target.startsWith(`${imds.url}/metadata/identity/oauth2/token`)),
    'and for the identity endpoint',
  );
  const elsewhere = proxy.requests.filter((r) => !fakes.has(r.method === 'CONNECT' ? r.target : new URL(r.target).host));
  assert.deepEqual(elsewhere, [], 'no destination but the fakes (no telemetry upload, no version check)');
  t.diagnostic(`cloud registration: ${registration.length} az runs; proxy saw ${proxy.requests.length} requests`);
});
