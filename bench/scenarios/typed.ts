/**
 * 2. Typed handler dispatch: GET /azure/groups in JSON mode against the ARM fake (the token is
 * cached after the first request), every run a job. Compared with scenario 1's JSON script rate.
 */
import type { Scenario } from '../lib/context.ts';
import { fetchJson } from '../lib/http.ts';
import { startProfiling } from '../lib/profile.ts';
import { fmtInt, fmtMs, fmtRatio } from '../lib/report.ts';
import { startArmhook } from '../lib/servers.ts';
import { ratio } from '../lib/stats.ts';
import { measureLoad, wrkNotes } from './dispatch.ts';

const PATH = '/azure/groups';

export const typed: Scenario = {
  id: '2',
  title: 'Typed handler dispatch',
  budgetMs: (c) => (c.loadSeconds + c.warmupSeconds + 90) * 1000,
  async run(ctx, out) {
    const { config, fx, fakes } = ctx;
    const profiling = startProfiling(config.profile, config.benchDir, config.root);
    const ah = await startArmhook(config, fx, 'typed', {
      workers: config.dispatchWorkers,
      fakes,
      waitReady: true,
      ...(profiling.env ? { env: profiling.env } : {}),
    });
    try {
      const probe = await fetchJson<{ status?: string; result?: unknown }>(ah.target, PATH, { headers: { accept: 'application/json' } });
      if (probe.status !== 200 || probe.json.status !== 'succeeded')
        throw new Error(`GET ${PATH}: HTTP ${probe.status} ${JSON.stringify(probe.json).slice(0, 400)}`);
      const tokens0 = fakes.imds.counts.token;
      ctx.log(`armhook GET ${PATH} (JSON): ${config.connections} connections, ${config.loadSeconds} s`);
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const r = await measureLoad(ah, {
        method: 'GET',
        path: PATH,
        headers: { accept: 'application/json' },
        seconds: config.loadSeconds,
        warmupSeconds: config.warmupSeconds,
        connections: config.connections,
        threads: config.wrkThreads,
        dir: fx.tmp,
      });
      const wallMs = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const fakesCore = (cpu.user + cpu.system) / 1000 / wallMs;
      ctx.log(`  ${fmtInt(r.rps2xx)} req/s`);
      const vsScript = ratio(r.rps2xx, ctx.shared.armhookJsonRps);
      out.raw['armhook'] = {
        entry: ah.entry,
        result: r,
        armhookJsonScriptRps: ctx.shared.armhookJsonRps ?? null,
        fakesCpuCores: fakesCore,
        tokenRequestsDuringLoad: fakes.imds.counts.token - tokens0,
      };
      out.rows.push({
        scenario: `2. Typed handler, GET ${PATH} (JSON, ARM fake): req/s (2xx)`,
        armhook: fmtInt(r.rps2xx),
        peer: '— (webhook has no typed handlers)',
        ratio: vsScript === null ? '— (scenario 1 not run)' : `${fmtRatio(vsScript)} of script JSON`,
        goal: '≥ 3,000/s and ≥ 2× script JSON',
        met: r.rps2xx < 3000 ? false : vsScript === null ? null : vsScript >= 2,
      });
      out.rows.push({
        scenario: '2. Typed handler: latency p50 / p99',
        armhook: `${fmtMs(r.p50)} / ${fmtMs(r.p99)}`,
        peer: '—',
        ratio: '—',
        goal: '—',
        met: null,
      });
      out.notes.push(
        ...wrkNotes('armhook typed', r),
        `The IMDS and ARM fakes run in the bench process and used ${fakesCore.toFixed(2)} CPU cores during the load${fakesCore > 0.8 ? ' — **the fake may be the bottleneck**' : ''}; ${fakes.imds.counts.token - tokens0} token requests reached IMDS during the load (the token is cached).`,
        `Server CPU per request: ${r.serverCpuMsPerRequest?.toFixed(2) ?? '—'} ms.`,
      );
    } finally {
      await ah.stop();
    }
    profiling.report(out, 'the typed handler load');
  },
};
