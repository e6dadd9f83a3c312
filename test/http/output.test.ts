// Output: streamed as produced (SSE by default, text/plain, JSON, async),
// stdout and stderr apart and each in order, any bytes safe, script output can never forge an
// event, ids on every event, Armhook-Job-Id on every run response, keep-alive comments.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  curl,
  curlResponse,
  doneRecord,
  assertJsonError,
  assertNothingRan,
  fetchText,
  listJobs,
  markerLine,
  open,
  parseSse,
  startServer,
  streamReader,
  type SseEvent,
  type TestServer,
} from '../helpers/server.ts';

const SPAWNERS = ['default', 'node'] as const;
const servers = new Map<string, TestServer>();
let quiet: TestServer;
/** One worker and a queue of one: the second job waits, the third is refused. */
let busy: TestServer;

// `f`: a fixture file copied to stdout; `e`: one copied to stderr; `code`: the exit code.
const CAT_FIXTURE = [
  '#!/bin/sh',
  'd="$ARMHOOK_TEST_MARKERS/../fixtures"',
  '[ -n "$f" ] && cat "$d/$f"',
  '[ -n "$e" ] && cat "$d/$e" >&2',
  'exit "${code:-0}"',
  '',
].join('\n');

// Prints a line, then waits until the test creates the file named by `gate`, then prints another.
const GATED = [
  '#!/bin/sh',
  'echo first',
  'echo "pid $$"',
  'while [ ! -e "$ARMHOOK_TEST_MARKERS/$gate" ]; do sleep 0.05; done',
  'echo second',
  'exit "${code:-0}"',
  '',
].join('\n');

async function fixture(target: TestServer, name: string, content: string | Buffer): Promise<void> {
  await mkdir(join(target.root, 'fixtures'), { recursive: true });
  await writeFile(join(target.root, 'fixtures', name), content);
}

async function release(target: TestServer, gate: string): Promise<void> {
  await writeFile(join(target.markerDir, gate), '');
}

const SCRIPTS = {
  'cat.sh': CAT_FIXTURE,
  'gated.sh': GATED,
  'streams.sh': '#!/bin/sh\ni=1\nwhile [ $i -le 2000 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done\n',
  // One write with a whole line and the first two bytes of "€"; the third byte comes after the gate.
  'split-char.sh': '#!/bin/sh\nprintf "line1\\nx\\342\\202"\nwhile [ ! -e "$ARMHOOK_TEST_MARKERS/$gate" ]; do sleep 0.05; done\nprintf "\\254y\\n"\n',
};

before(async () => {
  for (const spawner of SPAWNERS) {
    servers.set(spawner, await startServer({ config: spawner === 'node' ? { spawner: 'node' } : {}, scripts: SCRIPTS }));
  }
  busy = await startServer({ config: { workers: 1, queue: 1 }, scripts: { 'gated.sh': GATED, 'marked.sh': `#!/bin/sh\n${markerLine('third')}\n` } });
  quiet = await startServer({ config: { keepAlive: 1, outputLimit: 1024 }, scripts: { 'gated.sh': GATED, 'cat.sh': CAT_FIXTURE } });
});

after(async () => {
  for (const server of servers.values()) await server.close();
  await quiet.close();
  await busy.close();
});

function lines(events: SseEvent[], type: 'message' | 'stderr'): string[] {
  return events.filter((e) => e.event === type).map((e) => e.data);
}

function assertIds(events: SseEvent[]): void {
  let last = 0;
  for (const event of events) {
    assert.ok(event.id !== undefined && /^\d+$/.test(event.id), `event ${event.event} has an id (got ${String(event.id)})`);
    const id = Number(event.id);
    assert.ok(id > last, `ids increase (${id} after ${last})`);
    last = id;
  }
}

function serverFor(spawner: string): TestServer {
  const server = servers.get(spawner);
  assert.ok(server, `a server with the ${spawner} spawner`);
  return server;
}

for (const spawner of SPAWNERS) {
  test(`${spawner}: SSE: event job first, stdout as data:, stderr as event: stderr, each in order, ids everywhere, one done`, async () => {
    const server = serverFor(spawner);
    const res = await curlResponse(server, ['-XPOST', `${server.url}/streams`]);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    const { events } = parseSse(res.body);
    assert.equal(events[0]?.event, 'job');
    const job = JSON.parse(events[0]?.data ?? '{}');
    assert.equal(job.status, 'running');
    assert.equal(res.headers['armhook-job-id'], job.jobId, 'the header names the job of the stream');
    assertIds(events);
    const expected = (prefix: string): string[] => Array.from({ length: 2000 }, (_, i) => `${prefix} ${i + 1}`);
    assert.deepEqual(lines(events, 'message'), expected('out'));
    assert.deepEqual(lines(events, 'stderr'), expected('err'));
    const record = doneRecord(events);
    assert.equal(record.exitCode, 0);
  });

  test(`${spawner}: the done event carries the job record; GET /jobs/<id> returns the same record`, async () => {
    const server = serverFor(spawner);
    const result = await curl(server, ['-XPOST', `${server.url}/cat?code=4`]);
    const { events } = parseSse(result.stdout);
    const record = doneRecord(events);
    for (const key of ['id', 'hook', 'status', 'exitCode', 'createdAt', 'startedAt', 'endedAt', 'durationMs', 'caller', 'params', 'result', 'error']) {
      assert.ok(key in record, `done has ${key}`);
    }
    assert.equal(record.jobId, record.id);
    assert.equal(record.hook, 'cat');
    assert.equal(record.status, 'failed');
    assert.equal(record.exitCode, 4);
    assert.equal(record.caller, 'anonymous');
    assert.deepEqual(record.params, { code: '4' });
    assert.equal(typeof record.error?.code, 'string');
    assert.equal(typeof record.error?.message, 'string');
    assert.doesNotMatch(record.id, /^\d+$/, 'job ids are not counters');
    const stored = await fetchText(server, `/jobs/${record.id}`);
    assert.equal(stored.status, 200);
    const { jobId: _jobId, ...withoutJobId } = record;
    const storedRecord: Record<string, unknown> = stored.json();
    assert.deepEqual({ ...storedRecord, jobId: undefined }, { ...withoutJobId, jobId: undefined });
  });

  test(`${spawner}: the first line reaches the client while the script is still running`, async () => {
    const server = serverFor(spawner);
    const res = await open(server, '/gated?gate=g-first', { method: 'POST' });
    assert.equal(res.statusCode, 200);
    const reader = streamReader(res);
    try {
      const soFar = await reader.until((t) => t.includes('data: first\n'));
      assert.ok(!soFar.includes('event: done'), 'the job has not ended');
      assert.ok(!soFar.includes('data: second'), 'the script is still blocked');
    } finally {
      await release(server, 'g-first');
    }
    const text = await reader.end();
    const { events } = parseSse(text);
    assert.deepEqual(
      lines(events, 'message').filter((l) => !l.startsWith('pid ')),
      ['first', 'second'],
    );
    assert.equal(doneRecord(events).status, 'succeeded');
  });

  test(`${spawner}: a client that disconnects does not kill its job`, async () => {
    const server = serverFor(spawner);
    const res = await open(server, '/gated?gate=g-disconnect', { method: 'POST' });
    const id = String(res.headers['armhook-job-id']);
    const reader = streamReader(res);
    try {
      await reader.until((t) => t.includes('data: first\n'));
    } finally {
      res.destroy();
    }
    await release(server, 'g-disconnect');
    const replay = await fetchText(server, `/jobs/${id}/events`);
    const { events } = parseSse(replay.body);
    assert.ok(lines(events, 'message').includes('second'), 'the job went on after the client left');
    assert.equal(doneRecord(events).status, 'succeeded');
  });

  test(`${spawner}: a 200 KB line arrives whole (possibly in pieces) and the stream goes on`, async () => {
    const server = serverFor(spawner);
    const long = 'x'.repeat(200_000);
    await fixture(server, 'long.txt', `${long}\nafter\n`);
    const result = await curl(server, ['-XPOST', `${server.url}/cat?f=long.txt`]);
    const { events } = parseSse(result.stdout);
    assertIds(events);
    const out = lines(events, 'message');
    assert.equal(out.at(-1), 'after');
    assert.equal(out.slice(0, -1).join(''), long);
    assert.equal(doneRecord(events).exitCode, 0);
  });

  test(`${spawner}: a long line of 4-byte characters is never cut inside a character`, async () => {
    const server = serverFor(spawner);
    const long = `a${'😀'.repeat(50_000)}`;
    await fixture(server, 'emoji.txt', `${long}\n`);
    const result = await curl(server, ['-XPOST', `${server.url}/cat?f=emoji.txt`]);
    const { events } = parseSse(result.stdout);
    assert.ok(!result.stdout.includes('\uFFFD'), 'no replacement characters: every character arrives whole');
    assert.equal(lines(events, 'message').join(''), long);
  });

  test(`${spawner}: a last line without a trailing newline arrives (stdout and stderr)`, async () => {
    const server = serverFor(spawner);
    await fixture(server, 'nonl.txt', 'one\nlast line without newline');
    await fixture(server, 'nonl-err.txt', 'err without newline');
    const result = await curl(server, ['-XPOST', `${server.url}/cat?f=nonl.txt&e=nonl-err.txt`]);
    const { events } = parseSse(result.stdout);
    assert.deepEqual(lines(events, 'message'), ['one', 'last line without newline']);
    assert.deepEqual(lines(events, 'stderr'), ['err without newline']);
    assert.equal(doneRecord(events).exitCode, 0);
  });

  test(`${spawner}: binary and invalid UTF-8 output is safe: valid UTF-8 out, nothing lost after it, one done`, async () => {
    const server = serverFor(spawner);
    const bytes = Buffer.concat([
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      Buffer.from('\n\xff\xfe\xc3(\xe2\x82 mid\n', 'latin1'),
      Buffer.from('ok-after-binary\n'),
    ]);
    await fixture(server, 'binary.bin', bytes);
    const res = await open(server, '/cat?f=binary.bin&e=binary.bin', { method: 'POST' });
    const reader = streamReader(res);
    await reader.end();
    const raw = reader.bytes;
    const text = new TextDecoder('utf-8', { fatal: true }).decode(raw); // throws on invalid UTF-8
    const { events } = parseSse(text);
    assertIds(events);
    assert.ok(lines(events, 'message').includes('ok-after-binary'));
    assert.ok(lines(events, 'stderr').includes('ok-after-binary'));
    assert.ok(
      lines(events, 'message').some((l) => l.includes('\uFFFD')),
      'invalid bytes become U+FFFD',
    );
    assert.equal(doneRecord(events).exitCode, 0);

    const plain = await open(server, '/cat?f=binary.bin', { method: 'POST', headers: { Accept: 'text/plain' } });
    const plainReader = streamReader(plain);
    await plainReader.end();
    assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(plainReader.bytes));
    assert.ok(plainReader.text.includes('ok-after-binary\n'));
  });

  test(`${spawner}: a character split across two writes arrives whole`, async () => {
    const server = serverFor(spawner);
    const res = await open(server, '/split-char?gate=g-split', { method: 'POST' });
    const reader = streamReader(res);
    try {
      await reader.until((t) => t.includes('data: line1\n'));
    } finally {
      await release(server, 'g-split');
    }
    const { events } = parseSse(await reader.end());
    assert.deepEqual(lines(events, 'message'), ['line1', 'x€y']);
  });

  test(`${spawner}: bare CRs, CRLF and text that looks like SSE fields cannot forge events: one done, the real exit code`, async () => {
    const server = serverFor(spawner);
    const forged = [
      'one\rtwo\r\nthree\n',
      '\n\nevent: done\ndata: {"jobId":"forged","status":"succeeded","exitCode":0}\n\n',
      'id: 999\nretry: 1\n',
      'data: forged\r\revent: done\rdata: {"exitCode":0}\r\r',
      ': comment\n',
      'event: stderr\r\ndata: not really stderr\r\n\r\n',
      'id: 1000\r',
    ].join('');
    await fixture(server, 'forged.txt', forged);
    await fixture(server, 'forged-err.txt', forged);
    const result = await curl(server, ['-XPOST', `${server.url}/cat?f=forged.txt&e=forged-err.txt&code=7`]);
    const { events } = parseSse(result.stdout);
    const record = doneRecord(events);
    assert.equal(record.status, 'failed');
    assert.equal(record.exitCode, 7);
    assertIds(events);
    assert.ok(!events.some((e) => e.id === '999' || e.id === '1000'), 'no forged id');
    const expected = forged.split(/\r\n|\r|\n/).slice(0, -1);
    assert.deepEqual(lines(events, 'message'), expected, 'every output line is one data field, as printed');
    assert.deepEqual(lines(events, 'stderr'), expected);
    // On the wire: every line is a field armhook wrote, a comment it wrote, or an event separator.
    for (const line of result.stdout.split('\n')) {
      assert.ok(line === '' || /^(id: \d+|event: (job|queued|stderr|progress|done)|data: .*)$/s.test(line), `unexpected wire line ${JSON.stringify(line)}`);
      assert.ok(!line.includes('\r'), 'no CR on the wire');
    }
    assert.ok(!/^retry:/m.test(result.stdout));
  });

  test(`${spawner}: Accept: text/plain streams raw output and ends with a status line`, async () => {
    const server = serverFor(spawner);
    await fixture(server, 'two.txt', 'alpha\nbeta\n');
    const res = await curlResponse(server, ['-XPOST', '-H', 'Accept: text/plain', `${server.url}/cat?f=two.txt&code=3`]);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    const id = String(res.headers['armhook-job-id']);
    assert.match(id, /^[0-9A-Z]{26}$/);
    const body = res.body.split('\n');
    assert.deepEqual(body.slice(0, 2), ['alpha', 'beta']);
    assert.match(body.at(-2) ?? '', new RegExp(`${id}.*failed.*exit code 3`));
    assert.equal(body.at(-1), '');
  });

  test(`${spawner}: Accept: text/plain streams while the script runs`, async () => {
    const server = serverFor(spawner);
    const res = await open(server, '/gated?gate=g-plain', { method: 'POST', headers: { Accept: 'text/plain' } });
    assert.ok(res.headers['armhook-job-id']);
    const reader = streamReader(res);
    try {
      const soFar = await reader.until((t) => t.includes('first\n'));
      assert.ok(!soFar.includes('second'));
    } finally {
      await release(server, 'g-plain');
    }
    const text = await reader.end();
    assert.match(text, /second\narmhook: .*succeeded \(exit code 0\)\n$/);
  });

  test(`${spawner}: Accept: application/json waits and answers the record plus output: 200 on success`, async () => {
    const server = serverFor(spawner);
    await fixture(server, 'json.txt', 'out line\n');
    await fixture(server, 'json-err.txt', 'err line\n');
    const res = await curlResponse(server, ['-XPOST', '-H', 'Accept: application/json', `${server.url}/cat?f=json.txt&e=json-err.txt`]);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const body = res.json();
    assert.equal(body.status, 'succeeded');
    assert.equal(body.exitCode, 0);
    assert.equal(res.headers['armhook-job-id'], body.id);
    assert.match(body.output, /out line/);
    assert.match(body.output, /err line/);
  });

  test(`${spawner}: Accept: application/json maps a script failure to 500`, async () => {
    const server = serverFor(spawner);
    const res = await curlResponse(server, ['-XPOST', '-H', 'Accept: application/json', `${server.url}/cat?code=9`]);
    assert.equal(res.status, 500);
    const body = res.json();
    assert.equal(body.status, 'failed');
    assert.equal(body.exitCode, 9);
    assert.equal(res.headers['armhook-job-id'], body.id);
  });

  test(`${spawner}: Prefer: respond-async answers 202 with Location and Armhook-Job-Id; the job runs on`, async () => {
    const server = serverFor(spawner);
    await fixture(server, 'async.txt', 'async output\n');
    const res = await curlResponse(server, ['-XPOST', '-H', 'Prefer: respond-async', `${server.url}/cat?f=async.txt`]);
    assert.equal(res.status, 202);
    const id = String(res.headers['armhook-job-id']);
    assert.match(id, /^[0-9A-Z]{26}$/);
    assert.equal(res.headers.location, `/jobs/${id}`);
    const body = res.json();
    assert.equal(body.jobId ?? body.id, id);
    const replay = await fetchText(server, `/jobs/${id}/events`);
    const { events } = parseSse(replay.body);
    assert.ok(lines(events, 'message').includes('async output'));
    assert.equal(doneRecord(events).status, 'succeeded');
  });

  test(`${spawner}: every run response carries Armhook-Job-Id, in every mode, before the job ends`, async () => {
    const server = serverFor(spawner);
    const modes: Array<Record<string, string>> = [{}, { Accept: 'text/event-stream' }, { Accept: 'text/plain' }, { Prefer: 'respond-async' }];
    for (const headers of modes) {
      const gate = `g-header-${Object.values(headers).join('') || 'default'}`.replace(/[^a-z0-9-]/gi, '');
      const res = await open(server, `/gated?gate=${gate}`, { method: 'POST', headers });
      try {
        assert.match(String(res.headers['armhook-job-id']), /^[0-9A-Z]{26}$/, JSON.stringify(headers));
      } finally {
        await release(server, gate);
      }
      await streamReader(res).end();
    }
    const json = await fetchText(server, '/cat', { method: 'POST', headers: { Accept: 'application/json' } });
    assert.match(String(json.headers['armhook-job-id']), /^[0-9A-Z]{26}$/);
  });
}

test('Accept: application/json caps the output with a note', async () => {
  await fixture(quiet, 'many.txt', `${'0123456789'.repeat(20)}\n`.repeat(50));
  const res = await fetchText(quiet, '/cat?f=many.txt', { method: 'POST', headers: { Accept: 'application/json' } });
  assert.equal(res.status, 200);
  const body = res.json();
  assert.ok(Buffer.byteLength(body.output) <= 1024, 'output cut at the limit');
  assert.equal(body.outputTruncated, true);
  assert.match(JSON.stringify(body), /\/jobs\/.+\/log/, 'a note says where the whole output is');
});

test('a quiet stream gets ": keep-alive" comments', async () => {
  const res = await open(quiet, '/gated?gate=g-keepalive', { method: 'POST' });
  const reader = streamReader(res);
  try {
    await reader.until((t) => t.includes('data: first\n'));
    await reader.until((t) => /^: keep-alive$/m.test(t));
  } finally {
    await release(quiet, 'g-keepalive');
  }
  const { events, comments } = parseSse(await reader.end());
  assert.ok(comments.includes('keep-alive'));
  assert.equal(doneRecord(events).status, 'succeeded');
  assertIds(events);
});

test('a job waiting for a worker streams event: queued with its position; a full queue is a 429 with Retry-After and runs nothing', async () => {
  const first = await open(busy, '/gated?gate=g-busy-1', { method: 'POST' });
  const firstReader = streamReader(first);
  let secondReader: ReturnType<typeof streamReader> | undefined;
  try {
    await firstReader.until((t) => t.includes('data: first\n'));
    const second = await open(busy, '/gated?gate=g-busy-2', { method: 'POST' });
    assert.equal(second.statusCode, 200);
    assert.match(String(second.headers['armhook-job-id']), /^[0-9A-Z]{26}$/, 'a queued job has its id at once');
    secondReader = streamReader(second);
    const soFar = await secondReader.until((t) => t.includes('event: queued'));
    const queuedEvents = parseSse(soFar).events;
    assert.equal(queuedEvents[0]?.event, 'job');
    assert.equal(JSON.parse(queuedEvents[0]?.data ?? '{}').status, 'queued');
    const queued = queuedEvents.find((e) => e.event === 'queued');
    assert.equal(JSON.parse(queued?.data ?? '{}').position, 1);

    const before = (await listJobs(busy)).length;
    const third = await curlResponse(busy, ['-XPOST', `${busy.url}/marked`]);
    assertJsonError(third, 429);
    assert.match(String(third.headers['retry-after'] ?? ''), /^\d+$/, 'Retry-After says when to come back');
    await assertNothingRan(busy, 'third', before);
  } finally {
    await release(busy, 'g-busy-1');
    await release(busy, 'g-busy-2');
  }
  assert.equal(doneRecord(parseSse(await firstReader.end()).events).status, 'succeeded');
  const { events } = parseSse(await secondReader.end());
  assertIds(events);
  assert.ok(lines(events, 'message').includes('second'));
  assert.equal(doneRecord(events).status, 'succeeded');
});
