// A bounded worker pool and queue (429 beyond it), queued SSE callers see their
// position, and per-hook concurrency keys from parameters.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gateLine, release, waitGone } from '../helpers/process.ts';
import { fetchText, startServer, type TestServer } from '../helpers/server.ts';
import { EventStream, getJob, logLines, pidFrom, waitDone, waitLine, type JobRecord } from './helpers.ts';

let server: TestServer;

before(async () => {
  server = await startServer({
    config: { workers: 2, queue: 10 },
    scripts: {
      // Prints its pid, then blocks until the test releases its gate.
      'block.sh': `#!/bin/sh
echo "pid $$"
${gateLine('go-$gate')}
echo "released"
`,
    },
  });
});
after(() => server.close());

test('50 concurrent async requests with workers=2, queue=10: 12 accepted, 38 refused with 429 + Retry-After; all 12 complete; nothing left running', async () => {
  const responses = await Promise.all(
    Array.from({ length: 50 }, (_, i) => fetchText(server, `/block?gate=burst&n=${i}`, { method: 'POST', headers: { Prefer: 'respond-async' } })),
  );
  const accepted = responses.filter((r) => r.status === 202);
  const refused = responses.filter((r) => r.status === 429);
  assert.equal(accepted.length, 12, `statuses: ${responses.map((r) => r.status).join(' ')}`);
  assert.equal(refused.length, 38);
  for (const r of refused) {
    assert.match(String(r.headers['content-type']), /^application\/json/);
    const body = r.json<{ error: string; message: string }>();
    assert.equal(body.error, 'queue_full');
    assert.ok(body.message.length > 0);
    const retryAfter = String(r.headers['retry-after']);
    assert.match(retryAfter, /^\d+$/, 'Retry-After in seconds');
    assert.ok(Number(retryAfter) >= 1);
    assert.equal(r.headers['armhook-job-id'], undefined, 'a refused request has no job');
  }
  const idsAccepted = accepted.map((r) => {
    const id = r.json<{ id: string }>().id;
    assert.equal(r.headers['armhook-job-id'], id);
    assert.equal(r.headers.location, `/jobs/${id}`);
    return id;
  });
  assert.equal(new Set(idsAccepted).size, 12);

  const states = await Promise.all(idsAccepted.map((id) => getJob(server, id)));
  const counts = states.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {});
  assert.equal((counts.running ?? 0) + (counts.queued ?? 0), 12, JSON.stringify(counts));
  assert.ok((counts.running ?? 0) <= 2, `never more than 2 running: ${JSON.stringify(counts)}`);
  assert.equal((await fetchText(server, '/jobs?status=queued&hook=block')).json().items.length, 10);

  await release(server.markerDir, 'go-burst');
  const records = await Promise.all(idsAccepted.map((id) => waitDone(server, id)));
  assert.deepEqual(
    records.map((r) => r.status),
    Array(12).fill('succeeded'),
  );

  // Every script printed its pid; none of them is still running.
  for (const id of idsAccepted) {
    const pid = pidFrom(await logLines(server, id), 'pid');
    assert.ok(await waitGone(pid), `pid ${pid} of job ${id} is gone`);
  }
  // Never more than two at once: sort the run intervals and check overlaps.
  const intervals = records.map((r) => [Date.parse(r.startedAt ?? ''), Date.parse(r.endedAt ?? '')] as const);
  for (const [start] of intervals) {
    const overlapping = intervals.filter(([s, e]) => s <= start && start < e).length;
    assert.ok(overlapping <= 2, `at most 2 jobs run at once (${overlapping} at ${start})`);
  }
});

test('SSE callers that are queued see event: queued with their position, and it moves up as jobs ahead of them end', async () => {
  // Two running (workers=2) hold the pool; three more queue behind them.
  const running = [
    await EventStream.open(server, '/block?gate=q-run1', { method: 'POST' }),
    await EventStream.open(server, '/block?gate=q-run2', { method: 'POST' }),
  ];
  for (const r of running) await r.until((events) => events.some((e) => e.event === 'message' && e.data.startsWith('pid ')), 'the pid line');
  const queued: EventStream[] = [];
  for (let i = 1; i <= 3; i++) queued.push(await EventStream.open(server, `/block?gate=q-wait${i}`, { method: 'POST' }));

  for (const [index, stream] of queued.entries()) {
    assert.equal(stream.status, 200);
    const events = await stream.until((e) => e.some((x) => x.event === 'queued'), 'a queued event');
    assert.equal(events[0]?.event, 'job');
    assert.deepEqual(JSON.parse(events[0]?.data ?? '{}'), { jobId: stream.jobId, status: 'queued' });
    const position = JSON.parse(events.find((e) => e.event === 'queued')?.data ?? '{}');
    assert.equal(position.position, index + 1, `queued #${index + 1}`);
    assert.equal(position.jobId, stream.jobId);
    assert.ok(
      events.every((e) => e.id !== undefined),
      'queued events have ids too',
    );
    assert.equal((await getJob(server, stream.jobId)).status, 'queued');
  }

  // One running job ends: the first queued starts, the others move up.
  await release(server.markerDir, 'go-q-run1');
  assert.equal((await running[0]?.done())?.status, 'succeeded');
  await queued[0]?.until((e) => e.some((x) => x.event === 'message' && x.data.startsWith('pid ')), 'q-wait1 starting');
  for (const [index, stream] of queued.slice(1).entries()) {
    await stream.until((events) => events.filter((e) => e.event === 'queued').some((e) => JSON.parse(e.data).position === index + 1), `position ${index + 1}`);
  }

  for (const gate of ['q-run2', 'q-wait1', 'q-wait2', 'q-wait3']) await release(server.markerDir, `go-${gate}`);
  for (const stream of [running[1], ...queued]) assert.equal((await stream?.done())?.status, 'succeeded');
  const last = queued[2]?.events ?? [];
  const positions = last.filter((e) => e.event === 'queued').map((e) => JSON.parse(e.data).position);
  assert.deepEqual(positions, [...positions].sort().reverse(), 'positions only move forward');
});

test('text/plain callers that are queued see their position too', async () => {
  const holders = [
    await EventStream.open(server, '/block?gate=t-run1', { method: 'POST' }),
    await EventStream.open(server, '/block?gate=t-run2', { method: 'POST' }),
  ];
  for (const h of holders) await h.until((events) => events.some((e) => e.data.startsWith('pid ')), 'pid');
  const text = await EventStream.open(server, '/block?gate=t-wait', { method: 'POST', headers: { Accept: 'text/plain' } });
  assert.equal(text.status, 200);
  await text.until(() => /queued, position 1/.test(text.text), 'the queued line');
  for (const gate of ['t-run1', 't-run2', 't-wait']) await release(server.markerDir, `go-${gate}`);
  for (const h of holders) await h.done();
  await text.toEnd();
  assert.match(text.text, /succeeded \(exit code 0\)\n$/);
});

test('per-hook concurrency: "# @concurrency 1 per rg" never overlaps two runs of one rg, and runs different rg in parallel', async (t) => {
  const local = await startServer({
    config: { workers: 4, queue: 10 },
    scripts: {
      'deploy.sh': `#!/bin/sh
# @param rg required The resource group
# @param name required Which gate to wait on
# @concurrency 1 per rg
echo "start $rg $name"
${gateLine('go-$name')}
echo "end $rg $name"
`,
    },
  });
  t.after(() => local.close());

  const a = await EventStream.open(local, '/deploy?rg=x&name=a', { method: 'POST' });
  await a.untilLine('start x a');
  // Another resource group runs alongside rg=x.
  const c = await EventStream.open(local, '/deploy?rg=y&name=c', { method: 'POST' });
  assert.equal((await getJob(local, c.jobId)).status, 'running', 'rg=y runs alongside rg=x');
  await c.untilLine('start y c');
  // The same resource group waits, with two of four workers idle.
  const b = await EventStream.open(local, '/deploy?rg=x&name=b', { method: 'POST' });
  const bQueued = await b.until((e) => e.some((x) => x.event === 'queued'), 'b queued behind a');
  assert.equal(JSON.parse(bQueued.find((e) => e.event === 'queued')?.data ?? '{}').position, 1);
  assert.equal((await getJob(local, b.jobId)).status, 'queued', 'b waits while a holds rg=x');
  assert.equal((await getJob(local, a.jobId)).status, 'running');
  assert.ok(!b.lines.includes('start x b'));

  await release(local.markerDir, 'go-a');
  const aRecord = await a.done();
  await b.untilLine('start x b');
  const bRunning: JobRecord = await getJob(local, b.jobId);
  assert.ok(Date.parse(bRunning.startedAt ?? '') >= Date.parse(aRecord.endedAt ?? ''), 'b started only after a ended');
  await release(local.markerDir, 'go-b');
  await release(local.markerDir, 'go-c');
  for (const s of [b, c]) assert.equal((await s.done()).status, 'succeeded');
});

test('per-hook concurrency: a queued run of a busy key does not hold up later runs of other keys (no head-of-line blocking)', async (t) => {
  const local = await startServer({
    config: { workers: 4, queue: 10 },
    scripts: {
      'deploy.sh': `#!/bin/sh
# @param rg required
# @param name required
# @concurrency 1 per rg
echo "start $rg $name"
${gateLine('go-$name')}
`,
    },
  });
  t.after(async () => {
    for (const n of ['a', 'b', 'c', 'd']) await release(local.markerDir, `go-${n}`);
    await local.close();
  });
  const a = await EventStream.open(local, '/deploy?rg=x&name=a', { method: 'POST' });
  await a.untilLine('start x a');
  const b = await EventStream.open(local, '/deploy?rg=x&name=b', { method: 'POST' });
  await b.until((e) => e.some((x) => x.event === 'queued'), 'b queued');
  // Three workers are free: rg=y and rg=z must start now, not wait behind b.
  const c = await EventStream.open(local, '/deploy?rg=y&name=c', { method: 'POST' });
  const d = await EventStream.open(local, '/deploy?rg=z&name=d', { method: 'POST' });
  const cRecord = await getJob(local, c.jobId);
  const dRecord = await getJob(local, d.jobId);
  assert.equal(cRecord.status, 'running', 'rg=y starts at once: 3 of 4 workers are idle');
  assert.equal(dRecord.status, 'running', 'rg=z starts at once');
  await waitLine(local, c.jobId, 'start y c').then((s) => s.close());
});

test('a queued SSE caller that disconnects does not lose its job: it runs when a worker frees up', async () => {
  const holders = [
    await EventStream.open(server, '/block?gate=d-run1', { method: 'POST' }),
    await EventStream.open(server, '/block?gate=d-run2', { method: 'POST' }),
  ];
  for (const h of holders) await h.until((events) => events.some((e) => e.data.startsWith('pid ')), 'pid');
  const waiting = await EventStream.open(server, '/block?gate=d-wait', { method: 'POST' });
  await waiting.until((e) => e.some((x) => x.event === 'queued'), 'queued');
  const id = waiting.jobId;
  waiting.close();
  await release(server.markerDir, 'go-d-run1');
  await holders[0]?.done();
  const tail = await EventStream.open(server, `/jobs/${id}/events`);
  await tail.until((e) => e.some((x) => x.event === 'message' && x.data.startsWith('pid ')), 'the job starting');
  tail.close();
  await release(server.markerDir, 'go-d-wait');
  await release(server.markerDir, 'go-d-run2');
  assert.equal((await waitDone(server, id)).status, 'succeeded');
  await holders[1]?.done();
});

test('per-hook concurrency keys compare case-insensitively (rg=myrg waits for rg=MyRG); "case-sensitive" compares exactly', async (t) => {
  const hook = (option: string): string => `#!/bin/sh
# @param rg required The resource group
# @param name required Which gate to wait on
# @concurrency 1 per rg${option}
echo "start $rg $name"
${gateLine('go-$name')}
`;
  const local = await startServer({ config: { workers: 4, queue: 10 }, scripts: { 'deploy.sh': hook(''), 'exact.sh': hook(' case-sensitive') } });
  t.after(() => local.close());

  const a = await EventStream.open(local, '/deploy?rg=MyRG&name=a', { method: 'POST' });
  await a.untilLine('start MyRG a');
  const b = await EventStream.open(local, '/deploy?rg=myrg&name=b', { method: 'POST' });
  await b.until((e) => e.some((x) => x.event === 'queued'), 'b queued behind a');
  assert.equal((await getJob(local, b.jobId)).status, 'queued', 'rg=myrg waits while rg=MyRG runs');

  const c = await EventStream.open(local, '/exact?rg=MyRG&name=c', { method: 'POST' });
  await c.untilLine('start MyRG c');
  const d = await EventStream.open(local, '/exact?rg=myrg&name=d', { method: 'POST' });
  await d.untilLine('start myrg d');
  assert.equal((await getJob(local, c.jobId)).status, 'running', 'case-sensitive keys: both run');

  for (const gate of ['go-a', 'go-c', 'go-d']) await release(local.markerDir, gate);
  await b.untilLine('start myrg b');
  await release(local.markerDir, 'go-b');
  for (const s of [a, b, c, d]) assert.equal((await s.done()).status, 'succeeded');
});

test('@concurrency with an unknown option is refused with a clear error', async (t) => {
  const local = await startServer({ scripts: { 'bad.sh': '#!/bin/sh\n# @param rg required RG\n# @concurrency 1 per rg case-insensitive\necho hi\n' } });
  t.after(() => local.close());
  const res = await fetchText(local, '/bad', { method: 'POST' });
  assert.equal(res.status, 500, res.body);
  assert.match(res.json().message, /case-sensitive/);
});

test('Retry-After of a full queue is estimated from recent run times: quick jobs, a short wait', async (t) => {
  const local = await startServer({
    config: { workers: 1, queue: 30 },
    scripts: { 'quick.sh': '#!/bin/sh\necho quick\n', 'hold.sh': `#!/bin/sh\n${gateLine('go-hold')}\n` },
  });
  t.after(() => local.close());
  for (let i = 0; i < 5; i++) assert.equal((await fetchText(local, '/quick', { method: 'POST' })).status, 200);
  const hold = await fetchText(local, '/hold', { method: 'POST', headers: { Prefer: 'respond-async' } });
  assert.equal(hold.status, 202);
  const queued = await Promise.all(Array.from({ length: 30 }, () => fetchText(local, '/quick', { method: 'POST', headers: { Prefer: 'respond-async' } })));
  assert.ok(queued.every((r) => r.status === 202));
  const refused = await fetchText(local, '/quick', { method: 'POST' });
  assert.equal(refused.status, 429);
  // 30 queued jobs that each took milliseconds drain in about a second, not 30 (one per job).
  assert.ok(Number(refused.headers['retry-after']) <= 5, `Retry-After: ${refused.headers['retry-after']}`);
  await release(local.markerDir, 'go-hold');
  await waitDone(local, hold.json<{ id: string }>().id);
});
