// The job manager on the SQLite store, in process: a job whose record is still being committed
// when shutdown begins is ended (interrupted, never run), not left running behind the drain.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { JobManager, SqliteJobStore, type JobSpec } from '../../server/jobs/index.ts';
import { captureLog } from '../helpers/log.ts';

test('shutdown while a job is being recorded: the job ends interrupted and its task never runs', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'armhook-manager-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new SqliteJobStore({ dataDir: dir });
  const jobs = new JobManager({ store, log: captureLog().log, workers: 2, queue: 2, retentionDays: 0, retentionMax: 100 });
  await jobs.open();
  let ran = 0;
  const spec = (hook: string): JobSpec => ({
    hook,
    kind: 'script',
    method: 'POST',
    caller: 'alice',
    params: {},
    secrets: [],
    timeoutMs: 60_000,
    task: async () => ((ran += 1), { ok: true, exitCode: 0 }),
  });
  // All three wait on the same commit; shutdown starts before it.
  const submitted = [jobs.submit(spec('demo/a')), jobs.submit(spec('demo/b')), jobs.submit(spec('demo/c'))];
  const stopped = jobs.shutdown(1000);
  const started = await Promise.all(submitted);
  await stopped;
  assert.equal(ran, 0, 'no task ran');
  for (const job of started) {
    const record = await job.done;
    assert.equal(record.status, 'interrupted');
    assert.equal((await store.get(record.id))?.status, 'interrupted', 'and the store says so');
  }
  assert.equal(jobs.running, 0);
  await store.close();
});
