// Edges of the HTTP surface: JSON mode tells its job id early, parser-level errors keep armhook's shape.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertJsonError, curlResponse, fetchText, startServer, type TestServer } from '../helpers/server.ts';

let server: TestServer;

before(async () => {
  server = await startServer({
    scripts: {
      'wait.sh': '#!/bin/sh\necho waiting\nwhile [ ! -e "$ARMHOOK_TEST_MARKERS/go" ]; do sleep 0.02; done\necho released\n',
    },
  });
});
after(() => server.close());

test('Accept: application/json answers once, with the job id, and no 1xx that naive clients would take for the answer', async () => {
  const final = new Promise<{ informational: number; status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    let informational = 0;
    const req = request(`${server.url}/wait`, { method: 'POST', headers: { Accept: 'application/json' }, ca: server.ca, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ informational, status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('information', () => informational++);
    req.on('error', reject);
    req.end();
  });
  // The job is running (its id is listed) before the response comes.
  let running: Array<{ id: string; status: string }> = [];
  for (let i = 0; i < 500 && running.length === 0; i++) {
    running = (await fetchText(server, '/jobs?hook=wait&status=running')).json().items;
  }
  assert.equal(running.length, 1);
  await writeFile(join(server.markerDir, 'go'), '');
  const { informational, status, headers, body } = await final;
  assert.equal(informational, 0);
  assert.equal(status, 200);
  assert.equal(headers['armhook-job-id'], running[0]?.id);
  const record = JSON.parse(body);
  assert.equal(record.id, running[0]?.id);
  assert.equal(record.output, 'waiting\nreleased\n');
});

test('a request line over the parser limit gets a JSON 431, not a bare one', async () => {
  const res = await curlResponse(server, ['-i', '-XPOST', `${server.url}/wait?x=${'a'.repeat(20_000)}`]);
  const error = assertJsonError(res, 431, 'headers_too_large');
  assert.match(error.message, /body/);
});
