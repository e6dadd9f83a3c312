/**
 * 6. Start-up: from spawn() of the server process to its first 200 on the readiness probe
 * (armhook GET /healthz; webhook, which has no health route, GET / → "OK"), median of N runs.
 */
import type { Scenario } from '../lib/context.ts';
import { delay } from '../lib/procs.ts';
import { fmtMs, fmtRatio } from '../lib/report.ts';
import { startArmhook, startWebhook } from '../lib/servers.ts';
import { median, ratio } from '../lib/stats.ts';

export const startup: Scenario = {
  id: '6',
  title: 'Start-up',
  budgetMs: (c) => c.startupRuns * 2 * 15_000 + 30_000,
  async run(ctx, out) {
    const { config, fx, fakes } = ctx;
    const armhook: number[] = [];
    const webhook: number[] = [];
    const entries = new Set<string>();
    ctx.log(`${config.startupRuns} start-ups each, alternating`);
    for (let i = 0; i < config.startupRuns; i++) {
      const ah = await startArmhook(config, fx, `startup-${i}`, { workers: 2, fakes });
      armhook.push(ah.startMs);
      entries.add(ah.entry);
      await ah.stop();
      await delay(200);
      const wh = await startWebhook(fx, `startup-${i}`);
      webhook.push(wh.startMs);
      await wh.stop();
      await delay(200);
    }
    const a = median(armhook);
    const w = median(webhook);
    ctx.log(`  armhook ${fmtMs(a)}, webhook ${fmtMs(w)}`);
    out.raw['armhook'] = { runsMs: armhook, medianMs: a, entry: [...entries] };
    out.raw['webhook'] = { runsMs: webhook, medianMs: w };
    out.rows.push({
      scenario: `6. Start-up: spawn → first 200 from /healthz (median of ${config.startupRuns})`,
      armhook: fmtMs(a),
      peer: fmtMs(w),
      ratio: fmtRatio(ratio(a, w)),
      goal: '< 300 ms',
      met: a < 300,
    });
    out.notes.push(
      `armhook is started as \`bin/armhook serve\` (a sh wrapper that checks dist/ is fresh, then execs node on ${[...entries].map((e) => (e === 'dist' ? 'the bundled dist/' : e === 'source' ? 'the TypeScript source (dist/ was stale)' : e)).join(' / ')}), with an empty data dir; runs ${armhook.map((x) => Math.round(x)).join(', ')} ms. webhook (no health route; GET / answers "OK"): ${webhook.map((x) => Math.round(x)).join(', ')} ms. The probe retries every 3 ms on a new TLS connection.`,
    );
  },
};
