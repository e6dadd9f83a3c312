/**
 * Why jobs live in a shared journal: the cost, per job, of storing two short lines three ways on
 * the disk under test, side by side in one run (the machine is shared and noisy: compare within a
 * run, not across runs).
 *
 *   node bench/micro/job-files.ts [dir]     (default: the temp dir; try a dir on the data disk)
 *
 * - churn:   a file per job (create, 2 writes, close), the file of the job 1,000 back unlinked —
 *            what retention does in steady state;
 * - recycle: the same, but files are renamed into a free list and truncated instead of unlinked
 *            and created (no inode allocation);
 * - journal: two lines appended to one open file.
 * Synchronous calls, so CPU per job is the syscalls' own cost, without thread-pool hand-offs.
 */
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const JOBS = 10_000;
const KEPT = 1_000;
const LINE = '{"record":{"id":"01KAAAAAAAAAAAAAAAAAAAAAAA","hook":"echo","status":"queued"}}\n';

function measure(name: string, perJob: (i: number) => void): void {
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < JOBS; i++) perJob(i);
  const used = process.cpuUsage(cpu);
  const wallUs = ((performance.now() - started) * 1000) / JOBS;
  console.log(`${name.padEnd(8)} ${wallUs.toFixed(1).padStart(8)} µs/job wall ${((used.user + used.system) / JOBS).toFixed(1).padStart(8)} µs/job CPU`);
}

const base = mkdtempSync(join(process.argv[2] ?? tmpdir(), 'armhook-job-files-'));
try {
  for (const sub of ['churn', 'recycle', 'recycle/free']) mkdirSync(join(base, sub));
  measure('churn', (i) => {
    const fd = openSync(join(base, 'churn', String(i)), 'wx', 0o600);
    writeSync(fd, LINE);
    writeSync(fd, LINE);
    closeSync(fd);
    if (i >= KEPT) unlinkSync(join(base, 'churn', String(i - KEPT)));
  });
  const free: string[] = [];
  measure('recycle', (i) => {
    const file = join(base, 'recycle', String(i));
    const reuse = free.pop();
    let fd: number;
    if (reuse) {
      renameSync(reuse, file);
      fd = openSync(file, 'r+');
      ftruncateSync(fd, 0);
    } else {
      fd = openSync(file, 'wx', 0o600);
    }
    writeSync(fd, LINE);
    writeSync(fd, LINE);
    closeSync(fd);
    if (i >= KEPT) {
      const freed = join(base, 'recycle', 'free', String(i - KEPT));
      renameSync(join(base, 'recycle', String(i - KEPT)), freed);
      free.push(freed);
    }
  });
  const journal = openSync(join(base, 'journal'), 'a', 0o600);
  measure('journal', () => {
    writeSync(journal, LINE);
    writeSync(journal, LINE);
  });
  closeSync(journal);
} finally {
  rmSync(base, { recursive: true, force: true });
}
