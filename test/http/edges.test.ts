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
    config: { spawner: 'helper' },
    scripts: {
      'wait.sh': '#!/bin/sh\necho waiting\nwhile [ ! -e "$ARMHOOK_TEST_MARKERS/go" ]; do sleep 0.02; done\necho released\n',
      'echo.sh': '#!/bin/sh\nenv | grep -E "^[a-z][a-z0-9_]*=" | sort\n',
      // The child leaves the script's process group and keeps the output pipe open for 60 s.
      'escape.sh': '#!/bin/sh\nsetsid sleep 60 &\necho "started $!"\n',
      'forever.sh': '#!/bin/sh\n# @timeout 3000000\necho never\n',
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

test('a JSON value with a lone surrogate is 400, nothing runs, and the spawn helper keeps serving', async () => {
  const { json } = { json: '{"x":"\\ud800"}' };
  const res = await fetchText(server, '/echo', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: json });
  const error = assertJsonError(res, 400, 'bad_param_value');
  assert.match(error.message, /"x"/);
  const after = await fetchText(server, '/echo?x=fine', { method: 'POST', headers: { Accept: 'application/json' } });
  assert.equal(after.status, 200);
  assert.equal(after.json().output, 'x=fine\n');
});

test('a script whose child escapes its process group (setsid) still ends when the script does', async () => {
  const res = await fetchText(server, '/escape', { method: 'POST', headers: { Accept: 'application/json' } });
  assert.equal(res.status, 200, res.body);
  const record = res.json();
  assert.equal(record.exitCode, 0);
  assert.match(record.output, /^started \d+\n$/);
  const pid = Number(/started (\d+)/.exec(record.output)?.[1]);
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
});

test('GET on a typed handler from another site is refused before anything else (it would start a job)', async () => {
  const cross = await fetchText(server, '/azure/whoami', { headers: { 'Sec-Fetch-Site': 'cross-site', Accept: 'application/json' } });
  assertJsonError(cross, 403, 'cross_site');
  // Same request from no browser context: reaches the handler route (503 here: no Azure in this test).
  const plain = await fetchText(server, '/azure/whoami', { headers: { Accept: 'application/json' } });
  assertJsonError(plain, 503, 'azure_not_ready');
});

test('a @timeout beyond what timers can hold is refused as an invalid header, not run', async () => {
  const res = await fetchText(server, '/forever', { method: 'POST' });
  const error = assertJsonError(res, 500, 'hook_invalid');
  assert.match(error.message, /@timeout/);
});
