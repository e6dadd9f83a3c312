/**
 * armhook benchmarks, side by side with adnanh/webhook. Entry point: `npm run bench`.
 *
 * Needs (Debian packages; the bench checks for them, names the apt-get line when one is missing,
 * and installs nothing itself):
 *     sudo apt-get install -y webhook wrk openssl
 * (`webhook` is adnanh/webhook 2.8.0, the peer; `wrk` makes the load; `openssl` the certificate.)
 * Everything else comes with the repository: Node 24 from `npm ci`, the IMDS and ARM fakes from
 * test/fakes.
 *
 * What it does, loopback only, every wait bounded, in under 10 minutes:
 *   1. `npm run build`, so bin/armhook runs the compiled server (BENCH_NO_BUILD=1 skips it);
 *   2. a temp dir with a self-signed certificate (one for both servers), the hook scripts, and
 *      webhook's hooks.json; the IMDS and ARM fakes in this process;
 *   3. scenarios 1–7 of the issue (bench/scenarios/*.ts), each server a separate process;
 *   4. bench/RESULTS.md (the table, machine, notes) and bench/results.json (raw numbers),
 *      rewritten after every scenario so an interrupted run still leaves what it measured.
 *
 * Environment:
 *   BENCH_QUICK=1          short runs (3 s loads, 20 MB, 100 tailers, 5 s slow client)
 *   BENCH_ONLY=1,3         only these scenarios
 *   BENCH_NO_BUILD=1       don't run `npm run build`
 *   BENCH_KEEP=1           keep the temp dir (server logs, job files)
 *   BENCH_RETENTION_MAX=n  ARMHOOK_RETENTION_MAX for the servers (default 1000, the product default)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBenchConfig } from './lib/config.ts';
import type { Ctx, Scenario, ScenarioOutput } from './lib/context.ts';
import { build, machine, missingTools } from './lib/env.ts';
import { closeAgents, within } from './lib/http.ts';
import { killAllNow, stopAll } from './lib/procs.ts';
import { renderMarkdown, writeResults, type BenchResults } from './lib/report.ts';
import { makeFixtures, startFakes, type Fakes } from './lib/servers.ts';
import { dispatch } from './scenarios/dispatch.ts';
import { fanout } from './scenarios/fanout.ts';
import { memory } from './scenarios/memory.ts';
import { slowClient } from './scenarios/slow-client.ts';
import { startup } from './scenarios/startup.ts';
import { streaming } from './scenarios/streaming.ts';
import { typed } from './scenarios/typed.ts';

const SCENARIOS: Scenario[] = [dispatch, typed, streaming, slowClient, fanout, startup, memory];

/** The temp dir, removed on SIGINT/SIGTERM too (unless BENCH_KEEP). */
let cleanupTmp: (() => void) | undefined;

function log(message: string): void {
  const t = new Date().toISOString().slice(11, 19);
  process.stdout.write(`[bench ${t}] ${message}\n`);
}

async function main(): Promise<number> {
  const t0 = performance.now();
  const config = loadBenchConfig();
  const missing = missingTools();
  if (missing) {
    process.stderr.write(`${missing}\n`);
    return 2;
  }
  log(`${config.quick ? 'quick' : 'full'} run${config.only.size > 0 ? `, scenarios ${[...config.only].join(',')}` : ''}`);

  let buildInfo: BenchResults['build'] = 'skipped';
  if (!config.skipBuild) {
    log('npm run build');
    buildInfo = await build(config);
  }

  const results: BenchResults = {
    quick: config.quick,
    knobs: ['BENCH_ONLY', 'BENCH_NO_BUILD', 'BENCH_NODE_OPTIONS', 'BENCH_PROFILE', 'BENCH_RETENTION_MAX'].flatMap((name) =>
      process.env[name] ? [`${name}=${process.env[name]}`] : [],
    ),
    machine: await machine(config),
    build: buildInfo,
    totalSeconds: 0,
    scenarios: [],
    notes: [],
  };
  if (results.machine.loadavgAtStart[0] !== undefined && results.machine.loadavgAtStart[0] > 0.5) {
    results.notes.push(
      `The machine was not idle when the run started (1-min load average ${results.machine.loadavgAtStart[0]}): other work shares these ${results.machine.nproc} CPUs, so figures may be low and noisy.`,
    );
  }
  results.notes.push(
    'All traffic is HTTPS on 127.0.0.1 with one self-signed P-256 certificate (openssl); clients verify it. Servers run as separate processes; clients (wrk, and the Node clients of scenarios 3–5) run on the same machine and share its CPUs.',
  );

  const tmp = mkdtempSync(join(tmpdir(), 'armhook-bench-'));
  if (!config.keepTemp) cleanupTmp = () => rmSync(tmp, { recursive: true, force: true });
  let fakes: Fakes | undefined;
  try {
    const fx = await makeFixtures(tmp);
    fakes = await startFakes(tmp);
    const ctx: Ctx = { config, fx, fakes, shared: {}, log: (m) => log(`  ${m}`) };
    const deadline = t0 + config.budgetMs;
    for (const scenario of SCENARIOS) {
      if (config.only.size > 0 && !config.only.has(scenario.id)) continue;
      const out: ScenarioOutput = { rows: [], notes: [], raw: {} };
      const s0 = performance.now();
      const load = loadavg().map((n) => Math.round(n * 100) / 100);
      let error: string | undefined;
      const left = deadline - performance.now();
      if (left < scenario.budgetMs(config) / 3) {
        error = `skipped: ${Math.round(left / 1000)} s left of the run's ${Math.round(config.budgetMs / 1000)} s budget`;
        log(`${scenario.id}. ${scenario.title}: ${error}`);
      } else {
        log(`${scenario.id}. ${scenario.title}`);
        try {
          const running = scenario.run(ctx, out);
          running.catch(() => undefined); // past its budget it is abandoned; its late failure must not crash the run
          await within(`scenario ${scenario.id}`, Math.min(scenario.budgetMs(config), left), running);
        } catch (e) {
          error = e instanceof Error ? e.message : String(e);
          log(`  failed: ${error}`);
        }
        await stopAll(); // whatever a failed or timed-out scenario left running
      }
      results.scenarios.push({
        id: scenario.id,
        title: scenario.title,
        ...out,
        ...(error ? { error } : {}),
        seconds: (performance.now() - s0) / 1000,
        loadavgAtStart: load,
      });
      results.totalSeconds = (performance.now() - t0) / 1000;
      writeResults(config, results);
    }
  } finally {
    await stopAll();
    closeAgents();
    await fakes?.close();
    if (config.keepTemp) log(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
  results.totalSeconds = (performance.now() - t0) / 1000;
  if (JSON.stringify(results.scenarios.map((s) => s.raw)).includes('"entry":"source"')) {
    results.notes.push(
      '**Some armhook servers ran the TypeScript source, not dist/**: server/ changed after `npm run build` (bin/armhook runs dist/ only while it is fresh). Those figures are for the slower, bigger source mode; rerun when server/ is quiet.',
    );
  }
  const files = writeResults(config, results);
  process.stdout.write(`\n${renderMarkdown(results)}\n`);
  log(`wrote ${files.md} and ${files.json} in ${Math.round(results.totalSeconds)} s`);
  return results.scenarios.some((s) => s.error) ? 1 : 0;
}

process.on('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAllNow();
    cleanupTmp?.();
    process.exit(130);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
    // Nothing should be left, but never hang on a stray handle.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    killAllNow();
    process.exit(1);
  },
);
