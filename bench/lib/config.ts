/**
 * What one bench run measures: the full issue-6 spec by default, short runs with BENCH_QUICK=1.
 */
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BenchConfig {
  quick: boolean;
  /** The repository root (bench/..). */
  root: string;
  /** bench/ itself (RESULTS.md and results.json go here). */
  benchDir: string;
  /** Skip `npm run build` (BENCH_NO_BUILD=1): measure whatever bin/armhook runs now. */
  skipBuild: boolean;
  /** Keep the temporary directory (BENCH_KEEP=1) for a look at logs and job files. */
  keepTemp: boolean;
  /** Scenarios 1 and 2's armhook under `node --cpu-prof` (BENCH_PROFILE=1), profiles in bench/profiles/. */
  profile: boolean;
  /** Only these scenarios (BENCH_ONLY=1,3,5); all when empty. */
  only: Set<string>;
  wrkThreads: number;
  connections: number;
  /** Seconds of each measured load run (scenarios 1 and 2). */
  loadSeconds: number;
  /** Seconds of load before each measured run, not counted (JIT, caches, connection set-up). */
  warmupSeconds: number;
  /** ARMHOOK_WORKERS for the dispatch and typed-handler servers. */
  dispatchWorkers: number;
  /** ARMHOOK_RETENTION_MAX for every server (default 1000, the product default: steady state prunes). */
  retentionMax: number;
  /** Scenario 3: bytes of script output. */
  streamBytes: number;
  /** Scenario 4: bytes of the slow client's job, seconds and rate of reading. */
  slowBytes: number;
  slowSeconds: number;
  slowBytesPerSecond: number;
  /** Scenario 5: tailers, lines (10 a second). */
  tailers: number;
  fanoutLines: number;
  /** Scenario 6: start-ups per server (median). */
  startupRuns: number;
  /** Scenario 7: jobs running at once. */
  memoryJobs: number;
  /** Whole-run watchdog, ms: partial results are written when it fires. */
  budgetMs: number;
}

function flag(name: string): boolean {
  const v = process.env[name];
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

function intEnv(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number ≥ 1 (got ${JSON.stringify(v)})`);
  return n;
}

export function loadBenchConfig(): BenchConfig {
  const quick = flag('BENCH_QUICK');
  const benchDir = dirname(dirname(fileURLToPath(import.meta.url)));
  const only = new Set(
    (process.env['BENCH_ONLY'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  return {
    quick,
    root: dirname(benchDir),
    benchDir,
    skipBuild: flag('BENCH_NO_BUILD'),
    keepTemp: flag('BENCH_KEEP'),
    profile: flag('BENCH_PROFILE'),
    only,
    wrkThreads: Math.max(1, Math.min(availableParallelism(), 4)),
    connections: 16,
    loadSeconds: quick ? 3 : 20,
    warmupSeconds: quick ? 1 : 3,
    dispatchWorkers: 16,
    retentionMax: intEnv('BENCH_RETENTION_MAX', 1000),
    streamBytes: quick ? 20_000_000 : 200_000_000,
    slowBytes: quick ? 20_000_000 : 200_000_000,
    slowSeconds: quick ? 5 : 30,
    slowBytesPerSecond: 1024,
    tailers: quick ? 100 : 1000,
    fanoutLines: quick ? 50 : 100,
    startupRuns: 5,
    memoryJobs: 100,
    budgetMs: 9.5 * 60_000,
  };
}

export const RESULTS_MD = 'RESULTS.md';
export const RESULTS_JSON = 'results.json';

export function benchPath(config: BenchConfig, name: string): string {
  return join(config.benchDir, name);
}
