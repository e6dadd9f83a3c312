// Jobs outlive the process that ran them. The real CLI (`armhook serve`) runs as its own
// process; SIGKILL mid-job then a restart on the same data dir shows the job interrupted with its
// output and reaps its processes; SIGTERM drains running jobs (up to ARMHOOK_DRAIN_TIMEOUT).
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import {
  gateLine,
  isGone,
  markerLine,
  release,
  removeRoot,
  startServerProcess,
  waitGone,
  type ProcessOptions,
  type ServerProcess,
} from '../helpers/process.ts';
import { curl, fetchText, open, parseSse } from '../helpers/server.ts';
import { assertConsecutive, EventStream, getJob, logLines, pidFrom, pollFinal, startAsync, type JobRecord } from './helpers.ts';

// Three lines, its pid, a child, a grandchild and a process in a session of its own (setsid, out
// of the group's reach), then blocks until released.
const TREE = `#!/bin/sh
${markerLine('ran-$name')}
echo "line 1"
echo "line 2"
echo "oops" >&2
echo "line 3"
echo "pid $$"
sh -c 'sleep 1000 & echo "grandchild $!"; wait' &
echo "child $!"
setsid sleep 1000 &
echo "escaped $!"
${gateLine('go-$name')}
echo "released"
`;

const SCRIPTS = { 'tree.sh': TREE, 'big.sh': '#!/bin/sh\nseq 1 600000\n' };

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Per test: the servers it started, killed when it ends, before the roots they shared are removed. */
const startedBy = new WeakMap<TestContext, ServerProcess[]>();

/**
 * Starts a server process and makes sure the test leaves nothing behind, whatever happens: one
 * hook per test kills every server it started (a restart on the same root included) and the
 * process groups it names, and only then removes their roots (a server still running would
 * write into a root being removed).
 */
async function start(t: TestContext, options: ProcessOptions, groups: number[]): Promise<ServerProcess> {
  let servers = startedBy.get(t);
  if (!servers) {
    const started: ServerProcess[] = [];
    startedBy.set(t, started);
    t.after(async () => {
      for (const server of started.toReversed()) await server.kill();
      for (const pgid of groups) {
        try {
          process.kill(-pgid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      for (const root of new Set(started.map((server) => server.root))) await removeRoot(root);
    });
    servers = started;
  }
  const server = await startServerProcess(options);
  servers.push(server);
  return server;
}

async function treePids(stream: EventStream): Promise<{ pid: number; child: number; grandchild: number; escaped: number }> {
  const events = await stream.until(
    (e) => ['pid ', 'child ', 'grandchild ', 'escaped '].every((p) => e.some((x) => x.event === 'message' && x.data.startsWith(p))),
    'the four pid lines',
  );
  const lines = events.filter((e) => e.event === 'message').map((e) => e.data);
  return { pid: pidFrom(lines, 'pid'), child: pidFrom(lines, 'child'), grandchild: pidFrom(lines, 'grandchild'), escaped: pidFrom(lines, 'escaped') };
}

test('SIGKILL during a job, start again on the same data dir: the job is interrupted with its output up to the kill, its processes are gone, a queued job never runs', async (t) => {
  const groups: number[] = [];
  const env = { ARMHOOK_WORKERS: '1', ARMHOOK_QUEUE: '5' };
  const first = await start(t, { scripts: SCRIPTS, env }, groups);

  const id = await startAsync(first, '/tree?name=k1');
  const queuedId = await startAsync(first, '/tree?name=k2');
  const tail = await EventStream.open(first, `/jobs/${id}/events`);
  const pids = await treePids(tail);
  groups.push(pids.pid, pids.escaped);
  const before = tail.events;
  assert.equal((await getJob(first, queuedId)).status, 'queued');

  const exit = await first.kill();
  assert.equal(exit.signal, 'SIGKILL');
  await tail.toEnd();
  // The job's processes are in their own process group: the server's death alone does not end them.
  for (const [name, pid] of Object.entries(pids))
    assert.equal(isGone(pid), false, `${name} ${pid} outlived the SIGKILLed server (so the restart has something to reap)`);

  const second = await start(t, { root: first.root, env }, groups);
  for (const [name, pid] of Object.entries(pids)) assert.ok(await waitGone(pid), `${name} ${pid} was reaped by the restart`);
  const reaped = second.logs().find((l) => l.msg === 'killed processes left running by an interrupted job');
  assert.ok(reaped, 'the restart logs what it killed');
  assert.equal(reaped.jobId, id);

  const record = await getJob(second, id);
  assert.equal(record.status, 'interrupted');
  assert.equal(record.exitCode, null);
  assert.equal(record.error?.code, 'interrupted');
  assert.notEqual(record.startedAt, null);
  assert.notEqual(record.endedAt, null);

  const lines = await logLines(second, id);
  for (const line of ['line 1', 'line 2', 'line 3', 'oops', `pid ${pids.pid}`, `child ${pids.child}`, `grandchild ${pids.grandchild}`])
    assert.ok(lines.includes(line), `the log kept "${line}"`);
  assert.ok(!lines.includes('released'));
  assert.match(lines.at(-1) ?? '', new RegExp(`^armhook: job ${id} interrupted`));

  // The replay is the output up to the kill, event for event, then done.
  const replay = parseSse((await fetchText(second, `/jobs/${id}/events`)).body).events;
  assertConsecutive(replay, 1);
  assert.deepEqual(replay.slice(0, before.length), before, 'events up to the kill are kept with their ids');
  assert.equal(replay.length, before.length + 1);
  assert.equal(replay.at(-1)?.event, 'done');
  assert.equal(JSON.parse(replay.at(-1)?.data ?? '{}').status, 'interrupted');

  const queued = await getJob(second, queuedId);
  assert.equal(queued.status, 'interrupted');
  assert.equal(queued.startedAt, null);

  // The restarted server works: a new job runs (the stale job holds no worker), and the queued one never ran.
  const fresh = await EventStream.open(second, '/tree?name=k3', { method: 'POST' });
  const freshPids = await treePids(fresh);
  groups.push(freshPids.pid, freshPids.escaped);
  await release(second.markerDir, 'go-k3');
  assert.equal((await fresh.done()).status, 'succeeded');
  assert.equal(await exists(join(second.markerDir, 'ran-k2')), false, 'the queued job never ran');
  const listed = (await fetchText(second, '/jobs?status=interrupted'))
    .json<{ items: JobRecord[] }>()
    .items.map((r) => r.id)
    .sort();
  assert.deepEqual(listed, [id, queuedId].sort());
});

test('SIGKILL twice in a row: a job interrupted once stays interrupted; nothing is reaped twice or lost', async (t) => {
  const groups: number[] = [];
  const first = await start(t, { scripts: SCRIPTS }, groups);
  const id = await startAsync(first, '/tree?name=twice');
  const pids = await treePids(await EventStream.open(first, `/jobs/${id}/events`));
  groups.push(pids.pid, pids.escaped);
  await first.kill();
  const second = await start(t, { root: first.root }, groups);
  const once = await getJob(second, id);
  assert.equal(once.status, 'interrupted');
  await second.kill();
  const third = await start(t, { root: first.root }, groups);
  const twice = await getJob(third, id);
  assert.deepEqual(twice, once, 'the record is unchanged by another restart');
  assert.equal(
    third.logs().some((l) => l.msg === 'killed processes left running by an interrupted job'),
    false,
  );
  const replay = parseSse((await fetchText(third, `/jobs/${id}/events`)).body).events;
  assert.equal(replay.filter((e) => e.event === 'done').length, 1, 'one done event, not one per restart');
});

test('SIGTERM with a running job: the server stops accepting, waits for the job, the job succeeds, the server exits 0', async (t) => {
  const groups: number[] = [];
  const env = { ARMHOOK_WORKERS: '1', ARMHOOK_DRAIN_TIMEOUT: '600' };
  const server = await start(t, { scripts: SCRIPTS, env }, groups);

  const stream = await EventStream.open(server, '/tree?name=drain', { method: 'POST' });
  const pids = await treePids(stream);
  groups.push(pids.pid, pids.escaped);
  const queued = await EventStream.open(server, '/tree?name=drain-queued', { method: 'POST' });
  await queued.until((e) => e.some((x) => x.event === 'queued'), 'queued');

  server.signal('SIGTERM');
  await server.waitForLog((l) => l.msg === 'waiting for running jobs to finish before exit');
  // The queued job never starts: its caller is told at once.
  const queuedRecord = await queued.done();
  assert.equal(queuedRecord.status, 'interrupted');
  assert.equal(queuedRecord.startedAt, null);

  // Draining: new work is refused.
  const refused = await curl(server, ['-i', '-XPOST', `${server.url}/tree?name=late`]);
  assert.match(refused.stdout, /^HTTP\/1\.1 503 /, refused.stdout + refused.stderr);
  assert.equal(await exists(join(server.markerDir, 'ran-late')), false);

  // The job is still running and its caller still connected; it finishes when released.
  assert.equal(server.child.exitCode, null, 'the server waits for the job');
  assert.ok(!stream.lines.includes('released'));
  await release(server.markerDir, 'go-drain');
  const record = await stream.done();
  assert.equal(record.status, 'succeeded');
  assert.ok(stream.lines.includes('released'));
  const exit = await server.exited;
  assert.deepEqual(exit, { code: 0, signal: null });
  for (const [name, pid] of Object.entries(pids)) assert.ok(await waitGone(pid), `${name} ${pid} gone`);
  assert.equal(await exists(join(server.markerDir, 'ran-drain-queued')), false, 'the queued job never ran');

  const again = await start(t, { root: server.root, env }, groups);
  assert.equal((await getJob(again, record.id)).status, 'succeeded', 'the record was saved before exit');
  assert.equal(
    again.logs().some((l) => l.msg.startsWith('jobs left running by a previous process')),
    false,
  );
});

test("SIGTERM to the server's whole process group (timeout(1), kill -- -pgid): the spawn helper stays for the drain, the job succeeds, no helper error", async (t) => {
  const groups: number[] = [];
  const env = { ARMHOOK_WORKERS: '1', ARMHOOK_DRAIN_TIMEOUT: '600' };
  const server = await start(t, { scripts: SCRIPTS, env, ownGroup: true }, groups);

  const stream = await EventStream.open(server, '/tree?name=group', { method: 'POST' });
  const tree = await treePids(stream);
  groups.push(tree.pid, tree.escaped);
  server.signalGroup('SIGTERM');
  await server.waitForLog((l) => l.msg === 'waiting for running jobs to finish before exit');
  await release(server.markerDir, 'go-group');
  const record = await stream.done();
  assert.equal(record.status, 'succeeded');
  assert.ok(stream.lines.includes('released'), 'output after the signal still reached the caller');
  assert.deepEqual(await server.exited, { code: 0, signal: null });
  assert.deepEqual(
    server
      .logs()
      .filter((l) => /spawn helper/.test(l.msg))
      .map((l) => l.msg),
    [],
    'the helper neither died nor was reported',
  );
});

test('SIGTERM with ARMHOOK_DRAIN_TIMEOUT=1 and a job that never ends: the job is interrupted, its processes are gone, the server exits', async (t) => {
  const groups: number[] = [];
  const env = { ARMHOOK_DRAIN_TIMEOUT: '1', ARMHOOK_KILL_GRACE: '1' };
  const server = await start(t, { scripts: SCRIPTS, env }, groups);

  const stream = await EventStream.open(server, '/tree?name=never', { method: 'POST' });
  const pids = await treePids(stream);
  groups.push(pids.pid, pids.escaped);
  server.signal('SIGTERM');
  const record = await stream.done();
  assert.equal(record.status, 'interrupted');
  assert.equal(record.error?.code, 'interrupted');
  for (const [name, pid] of Object.entries(pids)) assert.ok(await waitGone(pid), `${name} ${pid} gone`);
  const exit = await server.exited;
  assert.equal(exit.signal, null);
  assert.equal(exit.code, 0);

  const again = await start(t, { root: server.root, env }, groups);
  const stored = await getJob(again, record.id);
  assert.equal(stored.status, 'interrupted');
  const lines = await logLines(again, record.id);
  assert.ok(lines.includes('line 3'), 'output kept');
  assert.equal(
    again.logs().some((l) => l.msg.startsWith('jobs left running by a previous process')),
    false,
    'the first process recorded the end itself',
  );
});

test("a run request during the drain is refused with armhook's own 503: JSON {error, message} and Retry-After", async (t) => {
  const groups: number[] = [];
  const server = await start(t, { scripts: SCRIPTS, env: { ARMHOOK_DRAIN_TIMEOUT: '600' } }, groups);
  const stream = await EventStream.open(server, '/tree?name=shape', { method: 'POST' });
  const tree = await treePids(stream);
  groups.push(tree.pid, tree.escaped);
  server.signal('SIGTERM');
  await server.waitForLog((l) => l.msg === 'waiting for running jobs to finish before exit');
  try {
    const refused = await curl(server, ['-i', '-XPOST', `${server.url}/tree?name=late`]);
    assert.match(refused.stdout, /^HTTP\/1\.1 503 /, refused.stdout + refused.stderr);
    const body = JSON.parse(refused.stdout.slice(refused.stdout.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['error', 'message'], `armhook's error shape, got ${JSON.stringify(body)}`);
    assert.equal(body.error, 'shutting_down');
    assert.match(refused.stdout, /\r\nretry-after: \d+\r\n/i, 'Retry-After tells automation when to come back');
  } finally {
    await release(server.markerDir, 'go-shape');
    await stream.done();
    await server.exited;
  }
});

test("SIGTERM while a client has stopped reading a finished job's stream: the server still exits after the drain", async (t) => {
  const server = await start(t, { scripts: SCRIPTS, env: { ARMHOOK_DRAIN_TIMEOUT: '1' } }, []);
  // ~4 MB of SSE: more than the socket buffers hold, so the response cannot finish while paused.
  const res = await open(server, '/big', { method: 'POST' });
  t.after(() => res.destroy());
  res.pause();
  const id = String(res.headers['armhook-job-id']);
  assert.equal((await pollFinal(server, id)).status, 'succeeded');

  server.signal('SIGTERM');
  await server.waitForLog((l) => l.msg.startsWith('stopping'));
  // Only a bound for the failure case (a stuck server would otherwise hang the test run): the
  // drain timeout is 1 s and no job is running, so any exit within 20 s is a pass.
  let bound: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    server.exited.then((exit) => ({ exit })),
    new Promise<{ stuck: true }>((resolve) => {
      bound = setTimeout(() => resolve({ stuck: true }), 20_000);
    }),
  ]);
  clearTimeout(bound);
  assert.ok('exit' in outcome, 'armhook never exited after SIGTERM: a client that stopped reading holds server.close() forever');
  assert.equal(outcome.exit.code, 0);
});
