// DELETE /jobs/<id> cancels (the whole process tree of a running job; a queued job never
// runs; a finished job is 409), and timeouts: X-Hook-Timeout lowers, the hook's @timeout caps.
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gateLine, isGone, release, waitGone } from '../helpers/process.ts';
import { curl, fetchText, markerLine, startServer, type TestServer } from '../helpers/server.ts';
import { EventStream, getJob, pidFrom, startAsync, waitDone, type JobRecord } from './helpers.ts';

let server: TestServer;

// The script, a child shell, and the child's own child (the grandchild), all blocking.
const TREE = `#!/bin/sh
${markerLine('ran-$name')}
echo "pid $$"
sh -c 'sleep 1000 & echo "grandchild $!"; wait' &
echo "child $!"
${gateLine('go-$name')}
echo "released"
`;

before(async () => {
  server = await startServer({
    config: { workers: 1, queue: 10, killGrace: 2 },
    scripts: {
      'tree.sh': TREE,
      // A script that ignores SIGTERM: only the SIGKILL after the grace period ends it.
      'stubborn.sh': `#!/bin/sh
trap '' TERM
echo "pid $$"
${gateLine('go-$name')}
`,
      'quick.sh': '#!/bin/sh\necho quick\n',
      // Leaves a background process holding its stdout open, and exits.
      'leaver.sh': '#!/bin/sh\nsleep 1000 &\necho "left $!"\nexit 0\n',
      'slow.sh': `#!/bin/sh
# @timeout 1
echo "pid $$"
${gateLine('go-$name')}
`,
      'forever.sh': `#!/bin/sh
${markerLine('ran-forever-$name')}
echo "pid $$"
${gateLine('go-$name')}
`,
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

async function treePids(stream: EventStream): Promise<{ pid: number; child: number; grandchild: number }> {
  const events = await stream.until(
    (e) => ['pid ', 'child ', 'grandchild '].every((p) => e.some((x) => x.event === 'message' && x.data.startsWith(p))),
    'the three pid lines',
  );
  const lines = events.filter((e) => e.event === 'message').map((e) => e.data);
  return { pid: pidFrom(lines, 'pid'), child: pidFrom(lines, 'child'), grandchild: pidFrom(lines, 'grandchild') };
}

test('DELETE on a running job with a grandchild: the whole tree is gone, the status is cancelled, and the SSE caller gets done', async () => {
  const stream = await EventStream.open(server, '/tree?name=cancel1', { method: 'POST' });
  const pids = await treePids(stream);
  for (const pid of Object.values(pids)) assert.equal(isGone(pid), false, `pid ${pid} runs before the cancel`);

  // With curl, as an operator would.
  const result = await curl(server, ['-XDELETE', '-w', '\n%{http_code}', `${server.url}/jobs/${stream.jobId}`]);
  const [body = '', code] = result.stdout.split(/\n(?=\d+$)/);
  assert.equal(code, '200', result.stdout);
  const record = JSON.parse(body) as JobRecord;
  assert.equal(record.id, stream.jobId);
  assert.equal(record.status, 'cancelled');
  assert.equal(record.error?.code, 'cancelled');
  assert.notEqual(record.endedAt, null);

  const done = await stream.done();
  assert.equal(done.status, 'cancelled');
  assert.equal((await getJob(server, stream.jobId)).status, 'cancelled');
  for (const [name, pid] of Object.entries(pids)) assert.ok(await waitGone(pid), `${name} ${pid} is gone after the cancel`);
  assert.ok(!stream.lines.includes('released'));
});

test('DELETE on a script that ignores SIGTERM: killed after the grace period, status cancelled', async () => {
  const stream = await EventStream.open(server, '/stubborn?name=s1', { method: 'POST' });
  await stream.until((e) => e.some((x) => x.data.startsWith('pid ')), 'pid');
  const pid = pidFrom(stream.lines, 'pid');
  const res = await fetchText(server, `/jobs/${stream.jobId}`, { method: 'DELETE' });
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json().status, 'cancelled');
  assert.ok(await waitGone(pid));
  assert.equal((await stream.done()).status, 'cancelled');
});

test('DELETE on a queued job: cancelled and it never runs; the queue moves on', async () => {
  const holder = await EventStream.open(server, '/tree?name=holder', { method: 'POST' });
  await treePids(holder);
  const queuedId = await startAsync(server, '/tree?name=queued1');
  const behindId = await startAsync(server, '/quick');
  assert.equal((await getJob(server, queuedId)).status, 'queued');

  const res = await fetchText(server, `/jobs/${queuedId}`, { method: 'DELETE' });
  assert.equal(res.status, 200, res.body);
  const record = res.json<JobRecord>();
  assert.equal(record.status, 'cancelled');
  assert.equal(record.startedAt, null, 'it never started');
  assert.equal(record.exitCode, null);
  const events = await fetchText(server, `/jobs/${queuedId}/events`);
  assert.match(events.body, /event: done\n/);

  await release(server.markerDir, 'go-holder');
  assert.equal((await holder.done()).status, 'succeeded');
  assert.equal((await waitDone(server, behindId)).status, 'succeeded', 'the job behind the cancelled one ran');
  assert.equal(await exists(join(server.markerDir, 'ran-queued1')), false, 'the cancelled job never ran');
  assert.equal((await getJob(server, queuedId)).status, 'cancelled');
});

test('DELETE on a finished job is 409 JSON; on an unknown job 404 JSON', async () => {
  const id = await startAsync(server, '/quick');
  const record = await waitDone(server, id);
  assert.equal(record.status, 'succeeded');
  const res = await fetchText(server, `/jobs/${id}`, { method: 'DELETE' });
  assert.equal(res.status, 409);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.equal(res.json().error, 'job_ended');
  assert.equal((await getJob(server, id)).status, 'succeeded', 'unchanged');

  for (const unknown of ['01ARZ3NDEKTSV4RRFFQ69G5FAV', 'nope']) {
    const missing = await fetchText(server, `/jobs/${unknown}`, { method: 'DELETE' });
    assert.equal(missing.status, 404);
    assert.equal(missing.json().error, 'unknown_job');
  }
});

test('X-Hook-Timeout lowers the timeout: the job is timed-out and its process gone', async () => {
  const stream = await EventStream.open(server, '/forever?name=t1', { method: 'POST', headers: { 'X-Hook-Timeout': '1' } });
  await stream.until((e) => e.some((x) => x.data.startsWith('pid ')), 'pid');
  const pid = pidFrom(stream.lines, 'pid');
  const record = await stream.done();
  assert.equal(record.status, 'timed-out');
  assert.equal(record.error?.code, 'timed_out');
  assert.match(record.error?.message ?? '', /after 1 s/);
  assert.ok(await waitGone(pid));
});

test("X-Hook-Timeout cannot raise a hook's # @timeout: asking for 3600 s still ends at the hook's 1 s", async () => {
  const stream = await EventStream.open(server, '/slow?name=t2', { method: 'POST', headers: { 'X-Hook-Timeout': '3600' } });
  const record = await stream.done();
  assert.equal(record.status, 'timed-out');
  assert.match(record.error?.message ?? '', /after 1 s/);
});

test('X-Hook-Timeout timed-out in JSON mode answers 504', async () => {
  const res = await fetchText(server, '/forever?name=t3', { method: 'POST', headers: { 'X-Hook-Timeout': '1', Accept: 'application/json' } });
  assert.equal(res.status, 504);
  assert.equal(res.json().status, 'timed-out');
});

test('a bad X-Hook-Timeout is 400 JSON and nothing runs', async () => {
  const before = (await fetchText(server, '/jobs?hook=forever&limit=500')).json().items.length;
  for (const bad of ['0', '-5', 'abc', '1.5', '10s', '']) {
    const name = `bad-${bad.replace(/[^a-z0-9]/g, 'x') || 'empty'}`;
    const res = await fetchText(server, `/forever?name=${name}`, { method: 'POST', headers: { 'X-Hook-Timeout': bad } });
    assert.equal(res.status, 400, `X-Hook-Timeout ${JSON.stringify(bad)}: ${res.status} ${res.body}`);
    assert.equal(res.json().error, 'bad_timeout');
    assert.equal(res.headers['armhook-job-id'], undefined);
    assert.equal(await exists(join(server.markerDir, `ran-forever-${name}`)), false);
  }
  assert.equal((await fetchText(server, '/jobs?hook=forever&limit=500')).json().items.length, before, 'no job was created');
});

test('DELETE while a second client tails a job ends that tail with the cancelled done event', async () => {
  const id = await startAsync(server, '/forever?name=t4', { 'X-Hook-Timeout': '3600' });
  const stream = await EventStream.open(server, `/jobs/${id}/events`);
  await stream.until((e) => e.some((x) => x.data.startsWith('pid ')), 'pid');
  const res = await fetchText(server, `/jobs/${id}`, { method: 'DELETE' });
  assert.equal(res.status, 200);
  assert.equal((await stream.done()).status, 'cancelled');
});

test('a script that exits leaving a background process behind: the job ends with the script, and the leftover is killed', async () => {
  const stream = await EventStream.open(server, '/leaver', { method: 'POST' });
  const record = await stream.done();
  assert.equal(record.status, 'succeeded');
  assert.equal(record.exitCode, 0);
  const pid = pidFrom(stream.lines, 'left');
  assert.ok(await waitGone(pid), `background pid ${pid} is gone once the job ended`);
});
