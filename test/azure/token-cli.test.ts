// `armhook token` against the IMDS fake: the real CLI (bin/armhook) in its own process, for two
// resources, system- and user-assigned, its errors, and from inside a job as "$ARMHOOK_BIN" token.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { decodeJwtPayload } from '../../server/azure/identity.ts';
import { startImdsFake, type ImdsFake } from '../fakes/imds.ts';
import { CLI, NODE } from '../helpers/process.ts';
import { fetchText, startServer } from '../helpers/server.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'armhook');
const USER_ASSIGNED = '5a1f4e2c-0000-4000-8000-00000000cafe';

let imds: ImdsFake;
before(async () => {
  imds = await startImdsFake({ userAssignedClientIds: [USER_ASSIGNED] });
});
after(() => imds.close());

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function armhook(args: string[], env: Record<string, string> = {}, command: [string, ...string[]] = [BIN]): Promise<Run> {
  return new Promise((resolve) => {
    // Only what a script would have: no ARMHOOK_* from the test runner's environment.
    const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
    const [file, ...prefix] = command;
    execFile(file, [...prefix, ...args], { env: { ...base, ...env }, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as NodeJS.ErrnoException & { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('two resources: one IMDS request each, the token is for that audience, --json describes it', async () => {
  const before = imds.tokenRequests.length;
  const vault = await armhook(['token', '--resource', 'https://vault.azure.net', '--json'], { ARMHOOK_IMDS_ENDPOINT: imds.url });
  assert.equal(vault.code, 0, vault.stderr);
  const parsed = JSON.parse(vault.stdout) as Record<string, unknown>;
  assert.equal(parsed.resource, 'https://vault.azure.net');
  assert.equal(parsed.tokenType, 'Bearer');
  assert.equal(parsed.identityType, 'system-assigned');
  assert.equal(parsed.principalId, imds.claims.oid);
  assert.equal(parsed.tenantId, imds.claims.tid);
  assert.ok(Date.parse(String(parsed.expiresOn)) > Date.now());
  assert.equal(decodeJwtPayload(String(parsed.accessToken))?.aud, 'https://vault.azure.net');

  // A scope works as well as a resource; the plain form is the token alone, one line.
  const storage = await armhook(['token', '--resource', 'https://storage.azure.com/.default'], { ARMHOOK_IMDS_ENDPOINT: imds.url });
  assert.equal(storage.code, 0, storage.stderr);
  assert.match(storage.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  assert.equal(decodeJwtPayload(storage.stdout.trim())?.aud, 'https://storage.azure.com');

  assert.deepEqual(
    imds.tokenRequests.slice(before).map((r) => [r.resource, r.clientId]),
    [
      ['https://vault.azure.net', null],
      ['https://storage.azure.com', null],
    ],
  );
});

test('Resource Manager by default; a user-assigned identity from the setting or from AZURE_CLIENT_ID', async () => {
  const before = imds.tokenRequests.length;
  const arm = await armhook(['token', '--json'], { ARMHOOK_IMDS_ENDPOINT: imds.url, ARMHOOK_MANAGED_IDENTITY_CLIENT_ID: USER_ASSIGNED });
  assert.equal(arm.code, 0, arm.stderr);
  const parsed = JSON.parse(arm.stdout) as Record<string, unknown>;
  assert.equal(parsed.resource, 'https://management.azure.com');
  assert.equal(parsed.identityType, 'user-assigned');
  assert.equal(parsed.clientId, USER_ASSIGNED);
  const fromEnv = await armhook(['token'], { AZURE_POD_IDENTITY_AUTHORITY_HOST: imds.url, AZURE_CLIENT_ID: USER_ASSIGNED });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  assert.deepEqual(
    imds.tokenRequests.slice(before).map((r) => [r.resource, r.clientId]),
    [
      ['https://management.azure.com', USER_ASSIGNED],
      ['https://management.azure.com', USER_ASSIGNED],
    ],
  );
});

test('errors: an unknown identity, an unreachable endpoint, a bad resource; nothing on stdout', async () => {
  const unknown = await armhook(['token'], { ARMHOOK_IMDS_ENDPOINT: imds.url, AZURE_CLIENT_ID: 'not-a-known-identity' });
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stdout, '');
  assert.match(
    unknown.stderr,
    /^armhook token: no token for https:\/\/management\.azure\.com from the user-assigned managed identity: the token endpoint refused: invalid_request \(Identity not found\)\n$/,
  );
  const down = await armhook(['token'], { ARMHOOK_IMDS_ENDPOINT: 'http://127.0.0.1:9' });
  assert.equal(down.code, 1);
  assert.match(down.stderr, /token endpoint unreachable at http:\/\/127\.0\.0\.1:9: ECONNREFUSED/);
  const requests = imds.tokenRequests.length;
  const bad = await armhook(['token', '--resource', 'vault'], { ARMHOOK_IMDS_ENDPOINT: imds.url });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--resource must be a resource URI/);
  assert.equal(imds.tokenRequests.length, requests, 'a bad resource asks nothing');
});

test('the token command loads neither fastify nor the identity library on a VM', async () => {
  // From the TypeScript source, where every package is its own module (the bundle inlines them).
  const hook = join(ROOT, 'test', 'helpers', 'record-packages.ts');
  const run = await armhook(['token'], { ARMHOOK_IMDS_ENDPOINT: imds.url }, [NODE, `--import=${hook}`, CLI]);
  assert.equal(run.code, 0, run.stderr);
  const loaded = /^packages loaded: (.*)$/m.exec(run.stderr)?.[1]?.split(',') ?? [];
  assert.ok(loaded.length > 0, run.stderr);
  assert.ok(!loaded.some((name) => name === 'fastify' || name.startsWith('@azure/') || name.startsWith('@fastify/')), loaded.join(', '));
});

test('a script gets ARMHOOK_BIN and AZURE_CLIENT_ID, and "$ARMHOOK_BIN" token works inside a job', async () => {
  const server = await startServer({
    config: { imdsEndpoint: imds.url, managedIdentityClientId: USER_ASSIGNED },
    scripts: {
      'kv.sh': [
        '#!/bin/sh',
        '# @param imds required The IMDS base URL (a VM uses the default)',
        'set -e',
        'echo "client=$AZURE_CLIENT_ID"',
        'token=$(AZURE_POD_IDENTITY_AUTHORITY_HOST=$imds "$ARMHOOK_BIN" token --resource https://vault.azure.net)',
        'echo "length=${#token}"',
        'AZURE_POD_IDENTITY_AUTHORITY_HOST=$imds "$ARMHOOK_BIN" token --json --resource https://storage.azure.com |',
        '  python3 -c \'import json, sys; d = json.load(sys.stdin); print(d["resource"], d["clientId"])\'',
        '',
      ].join('\n'),
    },
  });
  try {
    const before = imds.tokenRequests.length;
    const res = await fetchText(server, `/kv?imds=${encodeURIComponent(imds.url)}`, { method: 'POST', headers: { accept: 'application/json' } });
    assert.equal(res.status, 200, res.body);
    const output = String(res.json()['output']);
    assert.match(output, new RegExp(`^client=${USER_ASSIGNED}\\nlength=\\d{3,}\\nhttps://storage\\.azure\\.com ${USER_ASSIGNED}\\n$`));
    assert.deepEqual(
      imds.tokenRequests
        .slice(before)
        .filter((r) => r.resource !== server.config.armEndpoint)
        .map((r) => r.resource),
      ['https://vault.azure.net', 'https://storage.azure.com'],
    );
  } finally {
    await server.close();
  }
});
