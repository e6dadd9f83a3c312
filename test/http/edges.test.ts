// Edges of the HTTP surface: JSON mode tells its job id early, parser-level errors keep armhook's shape.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertJsonError, curlResponse, startServer, type TestServer } from '../helpers/server.ts';

let server: TestServer;

before(async () => {
  server = await startServer({
    scripts: {
      'wait.sh': '#!/bin/sh\necho waiting\nwhile [ ! -e "$ARMHOOK_TEST_MARKERS/go" ]; do sleep 0.02; done\necho released\n',
    },
  });
});
after(() => server.close());

test('Accept: application/json sends 103 Early Hints with the job id while the job runs', async () => {
  const final = new Promise<{ early: Record<string, unknown>; status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    let early: Record<string, unknown> = {};
    const req = request(`${server.url}/wait`, { method: 'POST', headers: { Accept: 'application/json' }, ca: server.ca, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ early, status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('information', (info) => {
      early = { status: info.statusCode, ...info.headers };
      // The job is known and still running: only now let it finish.
      void writeFile(join(server.markerDir, 'go'), '');
    });
    req.on('error', reject);
    req.end();
  });
  const { early, status, headers, body } = await final;
  assert.equal(early.status, 103);
  const id = early['armhook-job-id'];
  assert.match(String(id), /^[0-9A-Z]{26}$/);
  assert.equal(early.link, `</jobs/${id}>; rel="monitor"`);
  assert.equal(status, 200);
  assert.equal(headers['armhook-job-id'], id);
  const record = JSON.parse(body);
  assert.equal(record.id, id);
  assert.equal(record.output, 'waiting\nreleased\n');
});

test('a request line over the parser limit gets a JSON 431, not a bare one', async () => {
  const res = await curlResponse(server, ['-i', '-XPOST', `${server.url}/wait?x=${'a'.repeat(20_000)}`]);
  const error = assertJsonError(res, 431, 'headers_too_large');
  assert.match(error.message, /body/);
});
