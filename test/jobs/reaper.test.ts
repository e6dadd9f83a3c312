// After a crash, what an interrupted job left running is found by the ARMHOOK_JOB_ID in its
// environment — also when the job's process group had not been stored yet (armhook died right
// after the script started), so no leftover depends on that record update having landed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { JobManager, SqliteJobStore } from '../../server/jobs/index.ts';
import { captureLog } from '../helpers/log.ts';
import { isGone, waitGone } from '../helpers/process.ts';
import { newRecord } from './store-contract.ts';

test('start-up kills a leftover of an interrupted job whose process group was never stored, and marks the job interrupted', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'armhook-reaper-'));
  const record = newRecord({ status: 'running', pgid: null });
  const crashed = new SqliteJobStore({ dataDir: dir });
  await crashed.create(record, []);
  await crashed.close();

  // What the script started in a session of its own, still running after armhook died.
  const leftover = spawn('sleep', ['60'], {
    detached: true,
    stdio: 'ignore',
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ARMHOOK_JOB_ID: record.id },
  });
  const unrelated = spawn('sleep', ['60'], {
    detached: true,
    stdio: 'ignore',
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ARMHOOK_JOB_ID: newRecord().id },
  });
  const store = new SqliteJobStore({ dataDir: dir });
  try {
    const { log, lines } = captureLog();
    const jobs = new JobManager({ store, log, workers: 1, queue: 1, retentionDays: 0, retentionMax: 1000 });
    const interrupted = await jobs.open();
    assert.deepEqual(
      interrupted.map((r) => r.id),
      [record.id],
    );
    assert.ok(await waitGone(leftover.pid ?? 0), `the leftover ${leftover.pid} is killed`);
    assert.ok(!isGone(unrelated.pid ?? 0), 'a process of another job id is left alone');
    assert.equal((await store.get(record.id))?.status, 'interrupted');
    assert.ok(lines().some((l) => l.msg === 'killed processes left running by an interrupted job' && l['jobId'] === record.id));
  } finally {
    leftover.kill('SIGKILL');
    unrelated.kill('SIGKILL');
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
