// Edges of the HTTP surface: JSON mode tells its job id early, parser-level errors keep armhook's shape.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertJsonError, curlResponse, doneRecord, fetchText, open, parseSse, startServer, streamReader, type TestServer } from '../helpers/server.ts';
import { waitGone } from '../helpers/process.ts';
import { rawExchange } from '../helpers/raw.ts';

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

let server: TestServer;
/** The same scripts, started from Node (execa) instead of the spawn helper. */
let nodeSpawner: TestServer;

const SCRIPTS = {
  'wait.sh': '#!/bin/sh\necho waiting\nwhile [ ! -e "$ARMHOOK_TEST_MARKERS/go" ]; do sleep 0.02; done\necho released\n',
  'echo.sh': '#!/bin/sh\nenv | grep -E "^[a-z][a-z0-9_]*=" | sort\n',
  // The child leaves the script's process group and keeps the output pipe open for 60 s.
  'escape.sh': '#!/bin/sh\nsetsid sleep 60 &\necho "started $!"\n',
  'forever.sh': '#!/bin/sh\n# @timeout 3000000\necho never\n',
  // Prints while it is being stopped: a TERM trap's cleanup output is part of the job's output.
  'trap.sh':
    '#!/bin/sh\ntrap \'i=0; while [ $i -lt 2000 ]; do echo "cleanup line $i"; i=$((i+1)); done; echo LAST; exit 3\' TERM\necho ready\nwhile :; do sleep 0.05; done\n',
  // Like escape.sh, and the escaped child says when the script is gone (exited and reaped). The
  // script exits only once the child has left its group (the child's marker), or the group's
  // SIGTERM at the script's exit could reach the child before its setsid().
  'escape-told.sh':
    '#!/bin/sh\nme=$$\nsetsid sh -c "touch $ARMHOOK_TEST_MARKERS/escaped-$me; while kill -0 $me 2>/dev/null; do sleep 0.01; done; echo script gone; exec sleep 60" &\nwhile [ ! -e "$ARMHOOK_TEST_MARKERS/escaped-$me" ]; do sleep 0.01; done\necho "started $!"\n',
  // Leaves a process in a session of its own (nohup setsid), then runs until it times out.
  'escape-forever.sh': '#!/bin/sh\nnohup setsid sleep 60 >/dev/null 2>&1 &\necho "started $!"\nwhile :; do sleep 0.05; done\n',
};

before(async () => {
  server = await startServer({ config: { spawner: 'helper' }, scripts: SCRIPTS });
  // The default kill grace: 20 TERM traps printing 2,000 lines each on a busy machine need more than a second.
  nodeSpawner = await startServer({ config: { spawner: 'node' }, scripts: SCRIPTS });
});
after(async () => {
  await server.close();
  await nodeSpawner.close();
});

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

test('a script whose child escapes its process group (setsid) still ends when the script does, and so does the child (spawn helper)', async () => {
  const res = await fetchText(server, '/escape', { method: 'POST', headers: { Accept: 'application/json' } });
  assert.equal(res.status, 200, res.body);
  const record = res.json();
  assert.equal(record.status, 'succeeded');
  assert.equal(record.exitCode, 0);
  assert.match(record.output, /^started \d+\n$/);
  const pid = Number(/started (\d+)/.exec(record.output)?.[1]);
  try {
    assert.ok(await waitGone(pid, 500), `the escaped child ${pid} is ended with its job`);
  } finally {
    killQuietly(pid);
  }
});

for (const [name, target] of [
  ['helper', () => server],
  ['node', () => nodeSpawner],
] as const) {
  test(`spawner ${name}: a job that times out also ends what it started with nohup setsid`, async () => {
    const res = await fetchText(target(), '/escape-forever', { method: 'POST', headers: { Accept: 'application/json', 'X-Hook-Timeout': '1' } });
    const record = res.json();
    assert.equal(record.status, 'timed-out', res.body);
    const pid = Number(/started (\d+)/.exec(record.output)?.[1]);
    try {
      assert.ok(await waitGone(pid, 500), `the escaped process ${pid} is ended with its job`);
    } finally {
      killQuietly(pid);
    }
  });
}

test('spawner node: a job whose script left a process holding its output (setsid) runs on, and a cancel ends it, output kept', async () => {
  const started = await fetchText(nodeSpawner, '/escape-told', { method: 'POST', headers: { Prefer: 'respond-async' } });
  assert.equal(started.status, 202, started.body);
  const id = String(started.headers['armhook-job-id']);
  const stream = streamReader(await open(nodeSpawner, `/jobs/${id}/events`));
  const seen = await stream.until((text) => text.includes('data: script gone'));
  const child = Number(/data: started (\d+)/.exec(seen)?.[1]);
  try {
    // The script has exited and been reaped; the escaped child still holds the pipes.
    assert.equal((await fetchText(nodeSpawner, `/jobs/${id}`)).json().status, 'running');
    const cancel = await fetchText(nodeSpawner, `/jobs/${id}`, { method: 'DELETE' });
    assert.ok(cancel.status < 300, cancel.body);
    const { events } = parseSse(await stream.end());
    assert.equal(doneRecord(events)['status'], 'cancelled');
    assert.deepEqual(
      events.filter((e) => e.event === 'message').map((e) => e.data),
      [`started ${child}`, 'script gone'],
    );
    assert.ok(await waitGone(child, 500), `the escaped child ${child} is ended with its job`);
  } finally {
    killQuietly(child);
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

for (const spawner of ['helper', 'node'] as const) {
  test(`${spawner}: what a script prints while it is cancelled (its TERM trap) is all kept, 20 jobs at once`, async () => {
    const target = spawner === 'helper' ? server : nodeSpawner;
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const started = await fetchText(target, '/trap', { method: 'POST', headers: { Prefer: 'respond-async' } });
        assert.equal(started.status, 202, started.body);
        const id = String(started.headers['armhook-job-id']);
        const stream = streamReader(await open(target, `/jobs/${id}/events`));
        await stream.until((text) => text.includes('data: ready'));
        const cancel = await fetchText(target, `/jobs/${id}`, { method: 'DELETE' });
        assert.ok(cancel.status < 300, cancel.body);
        const { events } = parseSse(await stream.end());
        return { status: doneRecord(events)['status'], lines: events.filter((e) => e.event === 'message').map((e) => e.data) };
      }),
    );
    for (const { status, lines } of outcomes) {
      assert.equal(status, 'cancelled');
      assert.equal(lines.length, 2002, `ready, 2,000 cleanup lines and LAST; got ${lines.length}, ending ${JSON.stringify(lines.slice(-2))}`);
      assert.equal(lines.at(-1), 'LAST');
    }
  });
}

test('a path that is not valid percent-encoded UTF-8 (%c0%ae) is a 400 in the { error, message } shape', async () => {
  for (const path of ['/%c0%ae', '/%c0%ae%c0%ae/etc/passwd', '/jobs/%ff']) {
    const res = await fetchText(server, path);
    const body = assertJsonError(res, 400, 'bad_url');
    assert.ok(!JSON.stringify(body).includes('FST_ERR'), res.body);
  }
});

test('an HTTP/1.1 request without Host is a 400 in the { error, message } shape; HTTP/1.0 needs none', async () => {
  const res = await rawExchange(server, 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n');
  assert.equal(res.status, 400, res.head);
  assert.match(res.head, /content-type: application\/json/i);
  assert.equal(JSON.parse(res.body).error, 'missing_host');
  const old = await rawExchange(server, 'GET /healthz HTTP/1.0\r\n\r\n');
  assert.equal(old.status, 200, old.head);
});
