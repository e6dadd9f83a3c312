// GET /jobs/<id>/events replays from the start or from Last-Event-ID (header or
// ?lastEventId=), exactly the missed events, then follows a live job to its done event.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gateLine, release } from '../helpers/process.ts';
import { fetchText, parseSse, startServer, type SseEvent, type TestServer } from '../helpers/server.ts';
import { assertConsecutive, EventStream, ids, startAsync, waitDone, waitLine } from './helpers.ts';

let server: TestServer;

before(async () => {
  server = await startServer({
    scripts: {
      // $count numbered lines, then exit.
      'many.sh': '#!/bin/sh\nseq 1 "$count" | sed "s/^/n/"\n',
      // Three phases separated by gates the test opens.
      'live.sh': `#!/bin/sh
echo a1; echo a2; echo a3
${gateLine('go-a-$name')}
echo b1; echo b2; echo b3
${gateLine('go-b-$name')}
echo c1
`,
      // 2000 lines (more than the server keeps in memory for live readers), a gate, one more line.
      'flood.sh': `#!/bin/sh
seq 1 2000 | sed "s/^/n/"
${gateLine('go-$name')}
echo end
`,
    },
  });
});
after(() => server.close());

async function replay(id: string, from: number | undefined, via: 'header' | 'query'): Promise<SseEvent[]> {
  const path = via === 'query' && from !== undefined ? `/jobs/${id}/events?lastEventId=${from}` : `/jobs/${id}/events`;
  const headers: Record<string, string> = via === 'header' && from !== undefined ? { 'Last-Event-ID': String(from) } : {};
  const res = await fetchText(server, path, { headers });
  if (res.status === 204) {
    assert.equal(res.body, '', 'a 204 has no body');
    return [];
  }
  assert.equal(res.status, 200, res.body);
  return parseSse(res.body).events;
}

test('a finished job replays in full, and from any Last-Event-ID exactly the events after it', async () => {
  const id = await startAsync(server, '/many?count=2000');
  const record = await waitDone(server, id);
  assert.equal(record.status, 'succeeded');

  const all = await replay(id, undefined, 'header');
  assert.equal(all.length, 2002, 'job + 2000 lines + done');
  assertConsecutive(all, 1);
  assert.equal(all[0]?.event, 'job');
  assert.deepEqual(
    all.slice(1, -1).map((e) => e.data),
    Array.from({ length: 2000 }, (_, i) => `n${i + 1}`),
  );
  assert.equal(all.at(-1)?.event, 'done');

  // Near the start (long gone from any in-memory tail), the middle, the end, and past the end.
  for (const from of [0, 1, 2, 5, 700, 1500, 1999, 2001, 2002]) {
    for (const via of ['header', 'query'] as const) {
      const got = await replay(id, from, via);
      assert.deepEqual(got, all.slice(from), `Last-Event-ID ${from} via ${via}: exactly the events after it`);
    }
  }
  assert.deepEqual(await replay(id, 5000, 'header'), [], 'an id past the end: nothing, and the stream ends');
});

test('a finished job with nothing after Last-Event-ID answers 204, the EventSource signal to stop reconnecting; one that missed only `done` gets it', async () => {
  const id = await startAsync(server, '/many?count=3');
  await waitDone(server, id);
  for (const from of ['5', '9999']) {
    for (const [path, headers] of [
      [`/jobs/${id}/events`, { 'Last-Event-ID': from }],
      [`/jobs/${id}/events?lastEventId=${from}`, {}],
    ] as const) {
      const res = await fetchText(server, path, { headers });
      assert.equal(res.status, 204, `after ${from}: ${res.body}`);
      assert.equal(res.body, '');
      assert.equal(res.headers['armhook-job-id'], id);
    }
  }
  const missedDone = await fetchText(server, `/jobs/${id}/events`, { headers: { 'Last-Event-ID': '4' } });
  assert.equal(missedDone.status, 200, 'the done event is still to come');
  assert.deepEqual(
    parseSse(missedDone.body).events.map((e) => e.event),
    ['done'],
  );
});

test('a bad Last-Event-ID is 400 JSON', async () => {
  const id = await startAsync(server, '/many?count=3');
  await waitDone(server, id);
  for (const bad of ['abc', '-1', '1.5', '1e3']) {
    const viaHeader = await fetchText(server, `/jobs/${id}/events`, { headers: { 'Last-Event-ID': bad } });
    assert.equal(viaHeader.status, 400, `header ${bad}: ${viaHeader.body}`);
    assert.equal(typeof viaHeader.json().error, 'string');
    const viaQuery = await fetchText(server, `/jobs/${id}/events?lastEventId=${encodeURIComponent(bad)}`);
    assert.equal(viaQuery.status, 400, `query ${bad}: ${viaQuery.body}`);
  }
});

test('a live job: read some, disconnect, reconnect with Last-Event-ID (header and query) gets exactly the missed events; a second client tails from the start at any time', async () => {
  const id = await startAsync(server, '/live?name=l1');

  const first = await EventStream.open(server, `/jobs/${id}/events`);
  const seen = await first.untilLine('a3');
  first.close();
  const lastSeen = seen.find((e) => e.data === 'a3');
  const lastId = Number(lastSeen?.id);
  assert.ok(lastId > 0);
  assertConsecutive(seen, 1);

  // A second client follows the job live while the first is away.
  const tail = await EventStream.open(server, `/jobs/${id}/events`);
  await tail.untilLine('a3');
  await release(server.markerDir, 'go-a-l1');
  await tail.untilLine('b3');

  const resumedHeader = await EventStream.open(server, `/jobs/${id}/events`, { headers: { 'Last-Event-ID': String(lastId) } });
  const resumedQuery = await EventStream.open(server, `/jobs/${id}/events?lastEventId=${lastId}`);
  for (const resumed of [resumedHeader, resumedQuery]) {
    const got = await resumed.untilLine('b3');
    assert.deepEqual(
      got.map((e) => e.data),
      ['b1', 'b2', 'b3'],
      'only what was missed, nothing seen before',
    );
    assertConsecutive(got, lastId + 1);
  }
  // A third client arriving now still gets everything from the start.
  const late = await EventStream.open(server, `/jobs/${id}/events`);
  await late.untilLine('b3');
  assertConsecutive(late.events, 1);

  await release(server.markerDir, 'go-b-l1');
  const tailRecord = await tail.done();
  assert.equal(tailRecord.status, 'succeeded');
  for (const stream of [resumedHeader, resumedQuery, late]) {
    const record = await stream.done();
    assert.equal(record.status, 'succeeded');
  }
  const full = tail.events;
  assertConsecutive(full, 1);
  assert.deepEqual(
    full.filter((e) => e.event === 'message').map((e) => e.data),
    ['a1', 'a2', 'a3', 'b1', 'b2', 'b3', 'c1'],
  );
  assert.deepEqual(resumedHeader.events, full.slice(lastId), 'resumed + first read = the whole job, no duplicates');
  assert.deepEqual(resumedQuery.events, full.slice(lastId));
  assert.deepEqual(late.events, full);
});

test('a live job with more output than the in-memory tail: resuming from an old id reads the rest from disk, then follows live', async () => {
  const id = await startAsync(server, '/flood?name=f1');
  const tail = await waitLine(server, id, 'n2000');
  const all = tail.events;
  assertConsecutive(all, 1);
  assert.equal(all.length, 2001);

  for (const from of [1, 100, 1000, 1990]) {
    const resumed = await EventStream.open(server, `/jobs/${id}/events`, { headers: { 'Last-Event-ID': String(from) } });
    const got = await resumed.untilLine('n2000');
    assert.deepEqual(got, all.slice(from), `from ${from}: exactly the events after it`);
    resumed.close();
  }

  const waiting = await EventStream.open(server, `/jobs/${id}/events`, { headers: { 'Last-Event-ID': '500' } });
  await waiting.untilLine('n2000');
  await release(server.markerDir, 'go-f1');
  const record = await waiting.done();
  assert.equal(record.status, 'succeeded');
  const got = waiting.events;
  assertConsecutive(got, 501);
  assert.deepEqual(
    got.slice(-2).map((e) => e.event),
    ['message', 'done'],
  );
  assert.equal(got.at(-2)?.data, 'end');
  tail.close();
  assert.equal(new Set(ids(got)).size, got.length, 'no duplicates');
});

test('events of an unknown job are 404 JSON', async () => {
  for (const path of ['/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/events', '/jobs/not-a-job/events']) {
    const res = await fetchText(server, path);
    assert.equal(res.status, 404, path);
    assert.equal(res.json().error, 'unknown_job');
  }
});
