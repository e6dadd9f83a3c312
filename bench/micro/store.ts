// The job store alone, on the pattern of one dispatched job: create (with its first event), the
// process group (update), one line of output, the end (finish), then retention (prune) at the
// product's default policy. Jobs run `concurrency` at a time, as the dispatch scenario's
// connections do, so writes share commits as they do in the server. Reports CPU per job of this
// process (the store's thread included) after a warm-up that fills retention to its limit.
//
//   node bench/micro/store.ts [jobs] [concurrency] [dir]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobIds } from '../../server/jobs/ids.ts';
import { SqliteJobStore } from '../../server/jobs/sqlite-store.ts';
import type { JobEvent, JobRecord } from '../../server/jobs/types.ts';

const jobs = Number(process.argv[2] ?? 4000);
const concurrency = Number(process.argv[3] ?? 16);
const dir = mkdtempSync(join(process.argv[4] ?? tmpdir(), 'armhook-store-bench-'));
const store = new SqliteJobStore({ dataDir: dir });
const ids = new JobIds();
const policy = { endedBefore: Date.now() - 30 * 24 * 3600 * 1000, maxJobs: 1000, maxBytes: 0 };
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function oneJob(): Promise<void> {
  const now = new Date().toISOString();
  const record: JobRecord = {
    id: ids.next(),
    hook: 'echo',
    kind: 'script',
    method: 'POST',
    status: 'running',
    exitCode: null,
    createdAt: now,
    startedAt: now,
    endedAt: null,
    durationMs: null,
    caller: 'basic:bench',
    params: { name: 'value' },
    result: null,
    error: null,
    pgid: null,
  };
  let lastId = 0;
  const event = (type: JobEvent['event'], data: string): JobEvent => ({ id: ++lastId, event: type, data, at: Date.now() });
  await store.create(record, [event('job', JSON.stringify(record))]);
  const grouped = store.update({ ...record, pgid: 4242 });
  await nextTurn();
  await store.append(record.id, [event('stdout', 'hello from the echo hook')]);
  await grouped;
  const ended = { ...record, pgid: 4242, status: 'succeeded' as const, exitCode: 0, endedAt: new Date().toISOString(), durationMs: 3 };
  await store.finish(ended, event('done', JSON.stringify(ended)));
  await store.prune(policy);
}

async function run(count: number): Promise<void> {
  let left = count;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await oneJob();
    }),
  );
}

await run(policy.maxJobs * 1.5);
const cpu = process.cpuUsage();
const started = performance.now();
await run(jobs);
const used = process.cpuUsage(cpu);
const wall = performance.now() - started;
console.log(
  `${jobs} jobs, ${concurrency} at a time: ${((used.user + used.system) / jobs).toFixed(1)} µs CPU per job (user ${(used.user / jobs).toFixed(1)}, system ${(used.system / jobs).toFixed(1)}), ${((wall * 1000) / jobs).toFixed(1)} µs wall per job`,
);
await store.close();
rmSync(dir, { recursive: true, force: true });
