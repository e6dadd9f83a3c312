// Scripts follow armhook's settings through the real server: passed variables, MSI_ENDPOINT, the
// CA bundle and the job's AZURE_CONFIG_DIR from the template; tokens in output never stored or streamed.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { curl, doneRecord, parseSse, readTree, startServer, type TestServer } from '../helpers/server.ts';
import { writeTestPki } from '../helpers/certs.ts';

let server: TestServer;
let armCa: string;
const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
const TOKEN = `${b64({ typ: 'JWT', alg: 'RS256' })}.${b64({ aud: 'https://management.azure.com/', oid: 'leak-check' })}.c2lnbmF0dXJl`;

before(async () => {
  process.env.CORP_SETTING = 'from-armhook-env';
  process.env.NOT_PASSED = 'server-only';
  const pki = await writeTestPki(await makeDir('arm-pki'));
  armCa = pki.caCert;
  const template = await makeDir('az-template');
  await writeFile(join(template, 'config'), '[cloud]\nname = stack\n');
  await writeFile(join(template, 'clouds.config'), '[stack]\nprofile = 2020-09-01-hybrid\n');
  server = await startServer({
    config: { passEnv: ['CORP_SETTING'], azConfigTemplate: template, armCaFile: pki.caPath, imdsEndpoint: 'http://127.0.0.1:9' },
    scripts: {
      'env.sh': [
        '#!/bin/sh',
        'echo "CORP_SETTING=${CORP_SETTING:-} NOT_PASSED=${NOT_PASSED:-}"',
        'echo "MSI_ENDPOINT=$MSI_ENDPOINT"',
        'echo "AZURE_POD_IDENTITY_AUTHORITY_HOST=$AZURE_POD_IDENTITY_AUTHORITY_HOST"',
        'echo "REQUESTS_CA_BUNDLE=$REQUESTS_CA_BUNDLE SSL_CERT_FILE=$SSL_CERT_FILE"',
        'echo "--- config"; cat "$AZURE_CONFIG_DIR/config"; echo "--- clouds.config"; cat "$AZURE_CONFIG_DIR/clouds.config"',
        '',
      ].join('\n'),
      'token.sh': [
        '#!/bin/sh',
        'echo "{"',
        `echo '  "accessToken": "${TOKEN}",'`,
        `echo '  "tokenType": "Bearer"'`,
        'echo "}"',
        `echo 'curl -H "Authorization: Bearer ${TOKEN}" …' >&2`,
        `echo '{"access_token":"opaque-refreshable-value","expires_in":"3599"}'`,
        '',
      ].join('\n'),
    },
  });
});
after(async () => {
  delete process.env.CORP_SETTING;
  delete process.env.NOT_PASSED;
  await server.close();
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

const made: string[] = [];
async function makeDir(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `armhook-${name}-`));
  made.push(dir);
  return dir;
}

test('scripts get the passed variables, MSI_ENDPOINT, the CA bundle and the template with telemetry off', async () => {
  const result = await curl(server, ['-XPOST', `${server.url}/env`]);
  const { events } = parseSse(result.stdout);
  assert.equal(doneRecord(events).status, 'succeeded', result.stdout);
  const lines = events.filter((e) => e.event === 'message').map((e) => e.data);
  assert.ok(lines.includes('CORP_SETTING=from-armhook-env NOT_PASSED='), lines.join('\n'));
  assert.ok(lines.includes('MSI_ENDPOINT=http://127.0.0.1:9/metadata/identity/oauth2/token'));
  assert.ok(lines.includes('AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:9'));
  const bundleLine = lines.find((l) => l.startsWith('REQUESTS_CA_BUNDLE=')) ?? '';
  const bundle = /^REQUESTS_CA_BUNDLE=(\S+) SSL_CERT_FILE=(\S+)$/.exec(bundleLine);
  assert.ok(bundle && bundle[1] === bundle[2], bundleLine);
  assert.ok((await readFile(bundle[1] ?? '', 'utf8')).includes(armCa.trim()), 'the bundle holds the ARM CA');
  const config = lines.slice(lines.indexOf('--- config') + 1, lines.indexOf('--- clouds.config'));
  assert.deepEqual(config, ['[cloud]', 'name = stack', '', '[core]', 'collect_telemetry = false']);
  assert.deepEqual(lines.slice(lines.indexOf('--- clouds.config') + 1), ['[stack]', 'profile = 2020-09-01-hybrid']);
});

test('access tokens in output are masked in the stream, the record, the job files and the log', async () => {
  const result = await curl(server, ['-XPOST', `${server.url}/token`]);
  const { events } = parseSse(result.stdout);
  const record = doneRecord(events);
  assert.equal(record.status, 'succeeded', result.stdout);
  const data = events.map((e) => e.data);
  assert.ok(data.includes('  "accessToken": "***",'), data.join('\n'));
  assert.ok(events.some((e) => e.event === 'stderr' && e.data === 'curl -H "Authorization: Bearer ***" …'));
  assert.ok(data.includes('{"access_token":"***","expires_in":"3599"}'));
  const replay = await curl(server, [`${server.url}/jobs/${record.id}/events`]);
  const log = await curl(server, [`${server.url}/jobs/${record.id}/log`]);
  const stored = (await readTree(server.dataDir)).toString('latin1');
  for (const [where, text] of [
    ['stream', result.stdout],
    ['replay', replay.stdout],
    ['log', log.stdout],
    ['data dir', stored],
    ['server log', server.logs.text()],
  ] as const) {
    assert.ok(!text.includes(TOKEN) && !text.includes('opaque-refreshable-value'), `no token in the ${where}`);
  }
  assert.ok(log.stdout.includes('"accessToken": "***"'), 'the masked line is what is kept');
  assert.ok((await readdir(server.dataDir)).length > 0);
});
