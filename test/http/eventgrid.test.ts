// Azure Event Grid against the sample receiver scripts/events/eventgrid.sh: the subscription
// validation handshake (Event Grid schema) and the CloudEvents OPTIONS handshake are answered
// without running anything, only for callers allowed to run the hook; event arrays and a
// CloudEvents batch run it.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { hashPassword } from '../../server/auth/passwd.ts';
import { cloudEventsBatch, eventGridEvents, eventGridValidation } from '../fakes/senders.ts';
import { assertJsonError, fetchText, markerExists, startServer, type TestServer } from '../helpers/server.ts';

const ROOT = join(import.meta.dirname, '..', '..');
let dir: string;
let server: TestServer;
const GRID = 'grid:grid-pw';
const OTHER = 'other:other-pw';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'armhook-eventgrid-'));
  const htpasswd = join(dir, 'htpasswd');
  await writeFile(htpasswd, `grid:${await hashPassword('grid-pw', 4)}\nother:${await hashPassword('other-pw', 4)}\n`);
  const access = join(dir, 'access.json');
  await writeFile(
    access,
    JSON.stringify({
      rules: [
        { callers: ['grid'], run: ['events/*'], jobs: 'own' },
        { callers: ['other'], run: ['nothing/here'], jobs: 'own' },
      ],
    }),
  );
  const sample = await readFile(join(ROOT, 'scripts', 'events', 'eventgrid.sh'), 'utf8');
  server = await startServer({
    config: { htpasswd, access },
    scripts: {
      'events/eventgrid.sh': sample.replace(
        'set -eu\n',
        'set -eu\ntouch "$ARMHOOK_TEST_MARKERS/eventgrid-$ARMHOOK_JOB_ID"\ntouch "$ARMHOOK_TEST_MARKERS/eventgrid-ran"\n',
      ),
    },
  });
});

after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

test('SubscriptionValidation: 200 {"validationResponse": <code>} exactly, and no job', async () => {
  const validation = eventGridValidation();
  const res = await fetchText(server, '/events/eventgrid', { method: 'POST', body: validation.body, headers: validation.headers, auth: GRID });
  assert.equal(res.status, 200, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.deepEqual(JSON.parse(res.body), { validationResponse: validation.validationCode });
  assert.equal(res.headers['armhook-job-id'], undefined);
  assert.ok(!markerExists(server, 'eventgrid-ran'));
  assert.equal((await fetchText(server, '/jobs', { auth: GRID })).json().items.length, 0);
});

test('the handshakes are only for callers who may run the hook (403) and need authentication (401)', async () => {
  const validation = eventGridValidation();
  assertJsonError(
    await fetchText(server, '/events/eventgrid', { method: 'POST', body: validation.body, headers: validation.headers, auth: OTHER }),
    403,
    'forbidden',
  );
  assertJsonError(await fetchText(server, '/events/eventgrid', { method: 'POST', body: validation.body, headers: validation.headers }), 401);
  assertJsonError(
    await fetchText(server, '/events/eventgrid', { method: 'OPTIONS', headers: { 'webhook-request-origin': 'eventgrid.azure.net' }, auth: OTHER }),
    403,
    'forbidden',
  );
  assert.ok(!markerExists(server, 'eventgrid-ran'));
});

test('a malformed validation request is 400 and runs nothing', async () => {
  const res = await fetchText(server, '/events/eventgrid', {
    method: 'POST',
    body: '[{"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{}}]',
    headers: { 'content-type': 'application/json', 'aeg-event-type': 'SubscriptionValidation' },
    auth: GRID,
  });
  assertJsonError(res, 400, 'bad_validation_event');
  assert.ok(!markerExists(server, 'eventgrid-ran'));
});

test('CloudEvents webhook validation: OPTIONS with WebHook-Request-Origin answers WebHook-Allowed-Origin; OPTIONS without it is still 405', async () => {
  const res = await fetchText(server, '/events/eventgrid', {
    method: 'OPTIONS',
    headers: { 'webhook-request-origin': 'eventgrid.azure.net', 'webhook-request-rate': '120' },
    auth: GRID,
  });
  assert.equal(res.status, 200, res.body);
  assert.equal(res.headers['webhook-allowed-origin'], 'eventgrid.azure.net');
  assert.equal(res.headers['webhook-allowed-rate'], '*');
  assert.equal(res.headers['armhook-job-id'], undefined);
  assertJsonError(await fetchText(server, '/events/eventgrid', { method: 'OPTIONS', auth: GRID }), 405);
  assert.ok(!markerExists(server, 'eventgrid-ran'));
});

test('an Event Grid delivery and a CloudEvents batch run the receiver (202: # @respond async), the events are its stdin', async () => {
  for (const [delivery, expected] of [
    [eventGridEvents(), /events: 2\n {2}Microsoft\.Storage\.BlobCreated \/blobServices/],
    [cloudEventsBatch(), /events: 3\n {2}Microsoft\.Resources\.ResourceWriteSuccess/],
  ] as const) {
    const res = await fetchText(server, '/events/eventgrid', { method: 'POST', body: delivery.body, headers: delivery.headers, auth: GRID });
    assert.equal(res.status, 202, res.body);
    const id = String(res.headers['armhook-job-id']);
    await fetchText(server, `/jobs/${id}/events`, { auth: GRID });
    const record = (await fetchText(server, `/jobs/${id}`, { auth: GRID })).json();
    const log = (await fetchText(server, `/jobs/${id}/log`, { auth: GRID })).body;
    assert.equal(record.status, 'succeeded', log);
    assert.match(log, expected);
    assert.ok(markerExists(server, `eventgrid-${id}`));
  }
});
