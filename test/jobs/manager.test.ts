// The job manager in process, with fake tasks that finish when the test says so: the queue, its
// refusals (as AppErrors with a retry time), concurrency keys, cancel, timeout, a task that throws,
// secrets masked in output, and shutdown. No HTTP, no child processes.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { AppError } from '../../server/errors.ts';
import { JobManager, SqliteJobStore, type JobRecord } from '../../server/jobs/index.ts';
import type { JobSpec, Task, TaskOutcome } from '../../server/jobs/manager.ts';
import { captureLog } from '../helpers/log.ts';

let dir: string;
let store: SqliteJobStore | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'armhook-manager-'));
});
afterEach(async () => {
  await store?.close();
  store = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function manager(options: { workers?: number; queue?: number } = {}): Promise<JobManager> {
  const log = captureLog().log;
  const opened = new SqliteJobStore({ dataDir: dir });
  store = opened;
  const jobs = new JobManager({ store: opened, log, workers: options.workers ?? 1, queue: options.queue ?? 10, retentionDays: 0, retentionMax: 1000 });
  await jobs.open();
  return jobs;
}

/** A task that runs until `finish` is called (or its signal aborts); `started` resolves when it runs. */
function gate(outcome: TaskOutcome = { ok: true, exitCode: 0 }): { task: Task; started: Promise<void>; finish(): void } {
  let finish = (): void => {};
  let markStarted = (): void => {};
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const task: Task = (context) =>
    new Promise((resolve) => {
      markStarted();
      finish = () => resolve(outcome);
      context.signal.addEventListener('abort', () => resolve({ ok: false, exitCode: null }), { once: true });
    });
  return { task, started, finish: () => finish() };
}

const spec = (task: Task, fields: Partial<JobSpec> = {}): JobSpec => ({
  hook: 'h',
  kind: 'script',
  method: 'POST',
  caller: 'alice',
  params: {},
  secrets: [],
  timeoutMs: 60_000,
  task,
  ...fields,
});

test('one worker: the second job waits in the queue and starts when the first ends', async () => {
  const jobs = await manager();
  const first = gate();
  const second = gate();
  const a = await jobs.submit(spec(first.task));
  const b = await jobs.submit(spec(second.task));
  await first.started;
  assert.equal(b.record.status, 'queued');
  assert.deepEqual([jobs.running, jobs.queued], [1, 1]);
  first.finish();
  assert.equal((await a.done).status, 'succeeded');
  await second.started;
  second.finish();
  assert.equal((await b.done).status, 'succeeded');
});

test('a full queue is refused as queue_full (429) with a retry time, and counted', async () => {
  const jobs = await manager({ workers: 1, queue: 1 });
  const running = gate();
  await jobs.submit(spec(running.task));
  await jobs.submit(spec(gate().task));
  await assert.rejects(
    jobs.submit(spec(gate().task)),
    (err: unknown) =>
      err instanceof AppError && err.status === 429 && err.code === 'queue_full' && typeof err.retryAfterSeconds === 'number' && err.retryAfterSeconds >= 1,
  );
  assert.equal(jobs.counters.refused, 1);
  await jobs.shutdown(0);
});

test('jobs with the same concurrency key run one at a time; another key passes them', async () => {
  const jobs = await manager({ workers: 3 });
  const one = gate();
  const two = gate();
  const other = gate();
  const a = await jobs.submit(spec(one.task, { concurrency: { key: 'rg=a', limit: 1 } }));
  const b = await jobs.submit(spec(two.task, { concurrency: { key: 'rg=a', limit: 1 } }));
  const c = await jobs.submit(spec(other.task, { concurrency: { key: 'rg=b', limit: 1 } }));
  await Promise.all([one.started, other.started]);
  assert.deepEqual([a.record.status, b.record.status, c.record.status], ['running', 'queued', 'running']);
  one.finish();
  await two.started;
  two.finish();
  other.finish();
  assert.deepEqual(
    (await Promise.all([a.done, b.done, c.done])).map((r) => r.status),
    ['succeeded', 'succeeded', 'succeeded'],
  );
});

test('cancel: a queued job never runs; a running one is aborted and recorded cancelled', async () => {
  const jobs = await manager();
  const running = gate();
  let queuedRan = false;
  const a = await jobs.submit(spec(running.task));
  const b = await jobs.submit(spec(async () => ((queuedRan = true), { ok: true, exitCode: 0 })));
  await running.started;
  assert.equal(jobs.cancel(b.record.id), true);
  assert.equal((await b.done).error?.code, 'cancelled');
  assert.equal(jobs.cancel(a.record.id), true);
  const record = await a.done;
  assert.deepEqual([record.status, record.error?.code], ['cancelled', 'cancelled']);
  assert.equal(queuedRan, false);
  assert.equal(jobs.cancel(a.record.id), false, 'an ended job cannot be cancelled');
});

test('a task past its timeout is aborted and recorded timed-out', async () => {
  const jobs = await manager();
  const never = gate();
  const record = await (await jobs.submit(spec(never.task, { timeoutMs: 1 }))).done;
  assert.equal(record.status, 'timed-out');
  assert.equal(record.error?.code, 'timed_out');
});

test('a task that throws fails its job with an internal error (and the manager goes on)', async () => {
  const jobs = await manager();
  const failed = await (await jobs.submit(spec(async () => Promise.reject(new Error('boom'))))).done;
  assert.deepEqual([failed.status, failed.error?.code], ['failed', 'internal']);
  assert.ok(!JSON.stringify(failed).includes('boom'), 'the cause stays in the server log');
  assert.deepEqual((await (await jobs.submit(spec(async () => ({ ok: true, exitCode: 0, result: { n: 1 } })))).done).result, { n: 1 });
});

test('output lines are masked and stored as events; the done record carries the result', async () => {
  const jobs = await manager();
  const job = await jobs.submit(
    spec(
      async (context) => {
        context.output.chunk('stdout', Buffer.from('password is hunter2\npartial'));
        context.output.line('to stderr', 'stderr');
        return { ok: true, exitCode: 0, result: { id: 'x' } };
      },
      { secrets: ['hunter2'] },
    ),
  );
  const record: JobRecord = await job.done;
  assert.deepEqual(record.result, { id: 'x' });
  const log = await jobs.openLog(record.id);
  assert.ok(log);
  const lines: string[] = [];
  for (const event of await collect(log)) if (event.event === 'stdout' || event.event === 'stderr') lines.push(`${event.event}: ${event.data}`);
  assert.deepEqual(lines, ['stdout: password is ***', 'stderr: to stderr', 'stdout: partial']);
});

test('shutdown: no new jobs (503 shutting_down with a retry time); queued jobs are interrupted; running ones drain', async () => {
  const jobs = await manager();
  const running = gate();
  const a = await jobs.submit(spec(running.task));
  const b = await jobs.submit(spec(gate().task));
  await running.started;
  const stopping = jobs.shutdown(60_000);
  await assert.rejects(
    jobs.submit(spec(gate().task)),
    (err: unknown) => err instanceof AppError && err.status === 503 && err.code === 'shutting_down' && err.retryAfterSeconds === 5,
  );
  assert.equal((await b.done).status, 'interrupted');
  running.finish();
  await stopping;
  assert.equal((await a.done).status, 'succeeded');
});

async function collect(log: NonNullable<Awaited<ReturnType<JobManager['openLog']>>>): Promise<Array<{ event: string; data: string }>> {
  const reader = log.reader(0);
  const events: Array<{ event: string; data: string }> = [];
  try {
    for (let batch = await reader.next(); batch !== null && batch.length > 0; batch = await reader.next()) events.push(...batch);
  } finally {
    await reader.close();
  }
  return events;
}
