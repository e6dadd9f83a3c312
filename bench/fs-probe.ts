// Measures the per-job filesystem cost of the job store on this machine (not part of the suite).
import { mkdtempSync, rmSync, mkdtempSync as mk } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { JobStore } from '../server/jobs/store.ts';
import { ulid } from 'ulid';
const root = mkdtempSync(join(tmpdir(), 'fsprobe-'));
const store = new JobStore({ dataDir: root, log: pino({ level: 'silent' }) });
store.loadAll();
const N = 1000;
const t0 = performance.now();
for (let i = 0; i < N; i++) {
  const rec: any = { id: ulid(), hook: 'x', status: 'queued', params: {} };
  const log = store.create(rec);
  rec.status = 'running'; log.writeRecord(rec);
  log.append([{ event: 'job', data: '{}' }, { event: 'stdout', data: 'hello' }]);
  rec.pgid = 5; log.writeRecord(rec);
  rec.status = 'succeeded';
  log.append([{ event: 'done', data: '{}' }]);
  log.end();
}
console.log('store per job', ((performance.now() - t0) / N * 1000).toFixed(0), 'us');
const t1 = performance.now();
for (let i = 0; i < N; i++) { const d = mk(join(tmpdir(), 'armhook-az-')); rmSync(d, { recursive: true, force: true }); }
console.log('mkdtemp+rm', ((performance.now() - t1) / N * 1000).toFixed(0), 'us');
rmSync(root, { recursive: true, force: true });
