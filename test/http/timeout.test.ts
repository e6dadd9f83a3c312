// Timeouts and cancel end the whole process tree: the script and whatever it
// forked. "Gone" is checked after the job's done event, never after a clock: a process is gone
// when it no longer exists or is a zombie (dead; orphans wait for PID 1 to reap them).
// The tests run at once (each waits out a timeout or a grace period of its own, on its own job).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  assertJsonError,
  curl,
  curlResponse,
  doneRecord,
  fetchText,
  listJobs,
  open,
  parseSse,
  processGone,
  processGroupMembers,
  startServer,
  streamReader,
  type SseEvent,
  type TestServer,
} from '../helpers/server.ts';

const SPAWNERS = ['helper', 'node'] as const;
const servers = new Map<string, TestServer>();
const strays = new Set<number>();

// Forks a grandchild, prints both pids, then blocks (the foreground sleep is a third process).
const FORKS = '#!/bin/sh\nsleep 300 &\necho "grandchild $!"\necho "script $$"\nsleep 300\n';
// The grandchild ignores SIGTERM and closes its stdio: only SIGKILL of the group ends it, and
// nothing (no open pipe) keeps the job waiting for it.
const STUBBORN_DETACHED = '#!/bin/sh\n(trap "" TERM; exec sleep 300 </dev/null >/dev/null 2>&1) &\necho "grandchild $!"\necho "script $$"\nsleep 300\n';
// The grandchild ignores SIGTERM but keeps the output pipe open.
const STUBBORN_ATTACHED = '#!/bin/sh\n(trap "" TERM; exec sleep 300) &\necho "grandchild $!"\necho "script $$"\nsleep 300\n';

const SCRIPTS = {
  'forks.sh': `#!/bin/sh\n# @timeout 1\n${FORKS.slice('#!/bin/sh\n'.length)}`,
  'stubborn-detached.sh': `#!/bin/sh\n# @timeout 1\n${STUBBORN_DETACHED.slice('#!/bin/sh\n'.length)}`,
  'stubborn-attached.sh': `#!/bin/sh\n# @timeout 1\n${STUBBORN_ATTACHED.slice('#!/bin/sh\n'.length)}`,
  'cancel-me.sh': FORKS,
  'cancel-stubborn.sh': STUBBORN_DETACHED,
  'cancel-json.sh': FORKS,
  'leaves-child.sh': '#!/bin/sh\nsleep 300 </dev/null >/dev/null 2>&1 &\necho "grandchild $!"\necho "script $$"\nexit 0\n',
  'leaves-stubborn-child.sh': '#!/bin/sh\n(trap "" TERM; exec sleep 300 </dev/null >/dev/null 2>&1) &\necho "grandchild $!"\necho "script $$"\nexit 0\n',
  'slow-json.sh': '#!/bin/sh\n# @timeout 1\necho started\nsleep 300\n',
};

before(async () => {
  // Both ways scripts are started (the posix_spawn helper and Node's own spawn) must end whole trees.
  // Workers for every test's job at once, none queued behind another's timeout.
  for (const spawner of SPAWNERS) servers.set(spawner, await startServer({ config: { killGrace: 1, spawner, workers: 16 }, scripts: SCRIPTS }));
});

after(async () => {
  for (const pid of strays) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const server of servers.values()) await server.close();
});

function serverFor(spawner: string): TestServer {
  const server = servers.get(spawner);
  assert.ok(server, `a server with the ${spawner} spawner`);
  return server;
}

function pidOf(events: SseEvent[], label: string): number {
  const line = events.find((e) => e.event === 'message' && e.data.startsWith(`${label} `));
  assert.ok(line, `the script printed its ${label} pid`);
  const pid = Number(line.data.slice(label.length + 1));
  strays.add(pid);
  return pid;
}

function assertTreeGone(record: Record<string, any>, pids: number[]): void {
  for (const pid of pids) assert.ok(processGone(pid), `process ${pid} is gone once the job is done`);
  if (typeof record.pgid === 'number') assert.deepEqual(processGroupMembers(record.pgid), [], "nothing is left in the job's process group");
}

async function startAndCancel(
  server: TestServer,
  hook: string,
): Promise<{ id: string; record: Record<string, any>; events: SseEvent[]; cancelled: Record<string, any> }> {
  const res = await open(server, `/${hook}`, { method: 'POST' });
  const id = String(res.headers['armhook-job-id']);
  const reader = streamReader(res);
  await reader.until((t) => t.includes('data: script '));
  const cancel = await curlResponse(server, ['-X', 'DELETE', `${server.url}/jobs/${id}`]);
  assert.equal(cancel.status, 200, cancel.body);
  const cancelled = cancel.json();
  const { events } = parseSse(await reader.end());
  return { id, record: doneRecord(events), events, cancelled };
}

describe('timeouts and cancel', { concurrency: true }, () => {
  for (const spawner of SPAWNERS) {
    test(`${spawner}: a script over its @timeout is killed with the grandchild it forked: status timed-out, no process left`, async () => {
      const server = serverFor(spawner);
      const result = await curl(server, ['-XPOST', `${server.url}/forks`]);
      const { events } = parseSse(result.stdout);
      const record = doneRecord(events);
      assert.equal(record.status, 'timed-out');
      assert.equal(record.error?.code, 'timed_out');
      assert.match(record.error?.message ?? '', /timed out/);
      assertTreeGone(record, [pidOf(events, 'script'), pidOf(events, 'grandchild')]);
    });

    test(`${spawner}: timeout: a grandchild that ignores SIGTERM and closed its output is killed too (SIGKILL after the grace)`, async () => {
      const server = serverFor(spawner);
      const result = await curl(server, ['-XPOST', `${server.url}/stubborn-detached`]);
      const { events } = parseSse(result.stdout);
      const record = doneRecord(events);
      assert.equal(record.status, 'timed-out');
      assertTreeGone(record, [pidOf(events, 'script'), pidOf(events, 'grandchild')]);
    });

    test(`${spawner}: timeout: a grandchild that ignores SIGTERM and holds the output pipe is killed too`, async () => {
      const server = serverFor(spawner);
      const result = await curl(server, ['-XPOST', `${server.url}/stubborn-attached`]);
      const { events } = parseSse(result.stdout);
      const record = doneRecord(events);
      assert.equal(record.status, 'timed-out');
      assertTreeGone(record, [pidOf(events, 'script'), pidOf(events, 'grandchild')]);
    });

    test(`${spawner}: timeout in JSON mode answers 504 with the record`, async () => {
      const server = serverFor(spawner);
      const res = await curlResponse(server, ['-XPOST', '-H', 'Accept: application/json', `${server.url}/slow-json`]);
      assert.equal(res.status, 504);
      const body = res.json();
      assert.equal(body.status, 'timed-out');
      assert.match(body.output, /started/);
      assert.equal(res.headers['armhook-job-id'], body.id);
    });

    test(`${spawner}: timeout in text mode ends with a status line that says so`, async () => {
      const server = serverFor(spawner);
      const res = await curlResponse(server, ['-XPOST', '-H', 'Accept: text/plain', `${server.url}/slow-json`]);
      assert.equal(res.status, 200);
      assert.match(res.body, /^started\n/);
      assert.match(res.body, /armhook: job \S+ timed-out.*\n$/);
    });

    test(`${spawner}: DELETE /jobs/<id> cancels a running job and its grandchild: status cancelled, no process left`, async () => {
      const server = serverFor(spawner);
      const { record, events, cancelled } = await startAndCancel(server, 'cancel-me');
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(record.status, 'cancelled');
      assert.equal(record.error?.code, 'cancelled');
      assertTreeGone(record, [pidOf(events, 'script'), pidOf(events, 'grandchild')]);
      // The answer to DELETE comes when the job has ended: by then the tree is gone too.
      assertTreeGone(cancelled, []);
    });

    test(`${spawner}: cancel also ends a grandchild that ignores SIGTERM and closed its output`, async () => {
      const server = serverFor(spawner);
      const { record, events } = await startAndCancel(server, 'cancel-stubborn');
      assert.equal(record.status, 'cancelled');
      assertTreeGone(record, [pidOf(events, 'script'), pidOf(events, 'grandchild')]);
    });

    test(`${spawner}: cancelling a job that already ended is a 409; an unknown job is a 404`, async () => {
      const server = serverFor(spawner);
      const { id, record, events } = await startAndCancel(server, 'cancel-me');
      assert.equal(record.status, 'cancelled');
      assertTreeGone(record, [pidOf(events, 'script'), pidOf(events, 'grandchild')]);
      assertJsonError(await fetchText(server, `/jobs/${id}`, { method: 'DELETE' }), 409);
      assertJsonError(await fetchText(server, '/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV', { method: 'DELETE' }), 404);
    });

    test(`${spawner}: a JSON-mode run that is cancelled answers 409`, async () => {
      const server = serverFor(spawner);
      // JSON mode answers at the end (headers included), so the job is found through the job list.
      const answer = open(server, '/cancel-json', { method: 'POST', headers: { Accept: 'application/json' } });
      let running: Record<string, any> | undefined;
      while (!running) {
        running = (await listJobs(server, { hook: 'cancel-json' })).find((j) => j.status === 'running');
      }
      // The script has started once its first line is in the log.
      const events = await open(server, `/jobs/${running.id}/events`);
      const eventsReader = streamReader(events);
      await eventsReader.until((t) => t.includes('data: script '));
      const cancel = await fetchText(server, `/jobs/${running.id}`, { method: 'DELETE' });
      assert.equal(cancel.status, 200);
      const res = await answer;
      const reader = streamReader(res);
      await reader.end();
      assert.equal(res.statusCode, 409);
      const body = JSON.parse(reader.text);
      assert.equal(body.status, 'cancelled');
      await eventsReader.end();
    });

    test(`${spawner}: a background child left behind by a script that exited is ended with the job`, async () => {
      const server = serverFor(spawner);
      const result = await curl(server, ['-XPOST', `${server.url}/leaves-child`]);
      const { events } = parseSse(result.stdout);
      const record = doneRecord(events);
      assert.equal(record.status, 'succeeded');
      assertTreeGone(record, [pidOf(events, 'script'), pidOf(events, 'grandchild')]);
    });

    test(`${spawner}: a background child that ignores SIGTERM, left behind by a script that exited, is ended with the job`, async () => {
      const server = serverFor(spawner);
      const result = await curl(server, ['-XPOST', `${server.url}/leaves-stubborn-child`]);
      const { events } = parseSse(result.stdout);
      const record = doneRecord(events);
      assert.equal(record.status, 'succeeded');
      assertTreeGone(record, [pidOf(events, 'script'), pidOf(events, 'grandchild')]);
    });
  }
});
