// Jobs outlive the request that started them. Async start (202), poll, full log,
// replay of /events, and clients that disconnect in every response mode.
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gateLine, release } from '../helpers/process.ts';
import { curl, fetchText, markerLine, parseSse, startServer, type TestServer } from '../helpers/server.ts';
import { assertConsecutive, EventStream, FINAL, pending, pollJob, pollJobs, waitDone, waitLine } from './helpers.ts';

let server: TestServer;

// Prints two lines and one stderr line, blocks until the test releases `go-<name>`, prints two more.
const STEPS = `#!/bin/sh
echo "before 1"
echo "before 2"
echo "warn 1" >&2
${gateLine('go-$name')}
echo "after 1"
echo "after 2"
`;

before(async () => {
  server = await startServer({
    scripts: {
      'steps.sh': STEPS,
      'mark.sh': `#!/bin/sh\n${markerLine('mark-$name')}\necho marked\n`,
    },
  });
});
after(() => server.close());

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

test('Prefer: respond-async answers 202 with Location and Armhook-Job-Id; the job runs on, polls to completion, and its log and events are complete', async () => {
  const result = await curl(server, ['-i', '-XPOST', '-H', 'Prefer: respond-async', `${server.url}/steps?name=async1`]);
  assert.equal(result.code, 0, result.stderr);
  const [head = '', body = ''] = result.stdout.split(/\r\n\r\n/);
  assert.match(head, /^HTTP\/1\.1 202 /);
  const headers = new Map(
    head
      .split('\r\n')
      .slice(1)
      .map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
  );
  const json = JSON.parse(body) as { id: string; jobId: string };
  const id = json.id;
  assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/, 'a ULID-like id');
  assert.equal(json.jobId, id);
  assert.equal(headers.get('armhook-job-id'), id);
  assert.equal(headers.get('location'), `/jobs/${id}`);
  assert.match(headers.get('content-type') ?? '', /^application\/json/);

  // curl has exited (the client is gone); the job waits on its gate, visibly running.
  const running = await pollJob(server, id, (r) => r.status === 'running');
  assert.equal(running.hook, 'steps');
  assert.equal(running.endedAt, null);
  assert.deepEqual(running.params, { name: 'async1' });

  await release(server.markerDir, 'go-async1');
  const record = await pollJob(server, id, (r) => FINAL.includes(r.status));
  assert.equal(record.status, 'succeeded');
  assert.equal(record.exitCode, 0);
  assert.equal(record.error, null);
  for (const field of ['id', 'hook', 'status', 'exitCode', 'createdAt', 'startedAt', 'endedAt', 'durationMs', 'caller', 'params', 'result', 'error']) {
    assert.ok(field in record, `record has ${field}`);
  }

  const log = await fetchText(server, `/jobs/${id}/log`);
  assert.equal(log.status, 200);
  assert.match(String(log.headers['content-type']), /^text\/plain/);
  const lines = log.body.split('\n');
  const stdout = lines.filter((l) => l.startsWith('before') || l.startsWith('after'));
  assert.deepEqual(stdout, ['before 1', 'before 2', 'after 1', 'after 2']);
  assert.ok(lines.includes('warn 1'), 'stderr is in the log');
  assert.match(log.body, new RegExp(`armhook: job ${id} succeeded \\(exit code 0\\)\\n$`));

  // The replay is the whole job and then the response ends.
  const replay = await fetchText(server, `/jobs/${id}/events`);
  assert.equal(replay.status, 200);
  assert.match(String(replay.headers['content-type']), /^text\/event-stream/);
  const events = parseSse(replay.body).events;
  assertConsecutive(events, 1);
  assert.equal(events[0]?.event, 'job');
  assert.equal(JSON.parse(events[0]?.data ?? '{}').jobId, id);
  assert.deepEqual(
    events.filter((e) => e.event === 'message').map((e) => e.data),
    ['before 1', 'before 2', 'after 1', 'after 2'],
  );
  assert.deepEqual(
    events.filter((e) => e.event === 'stderr').map((e) => e.data),
    ['warn 1'],
  );
  const done = events.at(-1);
  assert.equal(done?.event, 'done');
  const doneRecord = JSON.parse(done?.data ?? '{}');
  assert.equal(doneRecord.jobId, id);
  const { jobId: _jobId, ...doneShape } = doneRecord;
  assert.deepEqual(doneShape, record, 'the done event and GET /jobs/<id> share one shape and values');
});

test('a client that disconnects from an SSE run mid-job does not kill it', async () => {
  const stream = await EventStream.open(server, '/steps?name=sse-gone', { method: 'POST' });
  assert.equal(stream.status, 200);
  const id = stream.jobId;
  assert.ok(id);
  await stream.untilLine('before 2');
  stream.close();

  const mid = await pollJob(server, id, () => true);
  assert.equal(mid.status, 'running', 'still running after the client left');
  await release(server.markerDir, 'go-sse-gone');
  const record = await waitDone(server, id);
  assert.equal(record.status, 'succeeded');
  const log = await fetchText(server, `/jobs/${id}/log`);
  assert.deepEqual(
    log.body.split('\n').filter((l) => /^(before|after) /.test(l)),
    ['before 1', 'before 2', 'after 1', 'after 2'],
  );
});

test('a client that disconnects from a text/plain run does not kill it', async () => {
  const stream = await EventStream.open(server, '/steps?name=gone-text', { method: 'POST', headers: { Accept: 'text/plain' } });
  assert.equal(stream.status, 200);
  const id = stream.jobId;
  assert.ok(id);
  await stream.until(() => stream.text.includes('before 2\n'), 'before 2');
  stream.close();
  await release(server.markerDir, 'go-gone-text');
  const record = await waitDone(server, id);
  assert.equal(record.status, 'succeeded');
});

test('a client that gives up waiting on an application/json run does not kill it', async () => {
  const request = pending(server, '/steps?name=gone-json', { method: 'POST', headers: { Accept: 'application/json' } });
  // JSON mode answers only at the end, so the running job is found the way a user would: in the list.
  const found = await pollJobs(server, '/jobs?hook=steps&status=running', (r) => r.params.name === 'gone-json');
  await waitLine(server, found.id, 'before 2').then((s) => s.close());
  request.abort();
  assert.equal((await pollJob(server, found.id, () => true)).status, 'running', 'still running after the client left');
  await release(server.markerDir, 'go-gone-json');
  const record = await waitDone(server, found.id);
  assert.equal(record.status, 'succeeded');
  const log = await fetchText(server, `/jobs/${found.id}/log`);
  assert.match(log.body, /after 2\n/);
});

test('a JSON-mode run answers with Armhook-Job-Id, and GET /jobs/<id>/events of the finished job replays it', async () => {
  const res = await fetchText(server, '/mark?name=json1', { method: 'POST', headers: { Accept: 'application/json' } });
  assert.equal(res.status, 200);
  const body = res.json<{ id: string; output: string }>();
  assert.equal(res.headers['armhook-job-id'], body.id);
  assert.equal(body.output, 'marked\n');
  const events = await waitDone(server, body.id);
  assert.equal(events.status, 'succeeded');
});

test('a request carrying Last-Event-ID never starts a job (409, pointing to /jobs/<id>/events)', async () => {
  const before = await fetchText(server, '/jobs?hook=mark&limit=500');
  const res = await fetchText(server, '/mark?name=resume', { method: 'POST', headers: { 'Last-Event-ID': '3', Accept: 'text/event-stream' } });
  assert.equal(res.status, 409);
  const error = res.json<{ error: string; message: string }>();
  assert.equal(typeof error.error, 'string');
  assert.match(error.message, /\/jobs\/<id>\/events/);
  assert.equal(await exists(join(server.markerDir, 'mark-resume')), false, 'the script did not run');
  const afterList = await fetchText(server, '/jobs?hook=mark&limit=500');
  assert.equal(afterList.json().items.length, before.json().items.length, 'no job was created');
});
