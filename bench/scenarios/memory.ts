/**
 * 7. Memory: RSS at idle, and with 100 jobs running at once (a script that waits for a gate file),
 * armhook (node + its spawn helper) and webhook (100 requests held open; its own process only —
 * the scripts themselves are not counted on either side).
 */
import { rmSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import type { Scenario } from '../lib/context.ts';
import { fetchJson, fetchText, pollUntil, within, type Reply } from '../lib/http.ts';
import { countProcesses, delay, type RssSample } from '../lib/procs.ts';
import { fmt1, fmtRatio } from '../lib/report.ts';
import { startArmhook, startWebhook, type RunningServer } from '../lib/servers.ts';
import { MB, MiB, ratio } from '../lib/stats.ts';

function mib(s: RssSample | undefined): string {
  if (!s) return '—';
  const helper = s.total - s.main;
  return helper > 0 ? `${fmt1(s.total / MiB)} MiB (node ${fmt1(s.main / MiB)} + helper ${fmt1(helper / MiB)})` : `${fmt1(s.total / MiB)} MiB`;
}

async function waitForRunning(holdScript: string, n: number): Promise<number> {
  return pollUntil(`${n} hold scripts running`, 60_000, 100, () => {
    const c = countProcesses(holdScript);
    return c >= n ? c : undefined;
  });
}

async function release(gate: string, holdScript: string): Promise<void> {
  writeFileSync(gate, '');
  await pollUntil('the hold scripts to end', 30_000, 100, () => (countProcesses(holdScript) === 0 ? true : undefined));
}

export const memory: Scenario = {
  id: '7',
  title: 'Memory',
  budgetMs: () => 240_000,
  async run(ctx, out) {
    const { config, fx, fakes } = ctx;
    const n = config.memoryJobs;
    const holdScript = join(fx.scriptsDir, 'hold.sh');
    rmSync(fx.holdGate, { force: true });
    let aIdle: RssSample | undefined;
    let aBusy: RssSample | undefined;
    let wIdle: RssSample | undefined;
    let wBusy: RssSample | undefined;

    // The jobs are started from 127.0.0.1, each on a connection of its own: lift the per-address cap above them.
    const perAddress = String(n + 16);
    let server: RunningServer = await startArmhook(config, fx, 'memory', {
      workers: n,
      queue: 100,
      fakes,
      waitReady: true,
      env: { ARMHOOK_MAX_CONNECTIONS_PER_ADDRESS: perAddress },
    });
    try {
      await delay(2000);
      aIdle = server.rss();
      ctx.log(`armhook idle ${mib(aIdle)}; starting ${n} jobs`);
      const starts = await Promise.all(
        Array.from({ length: n }, () => fetchJson<{ jobId?: string }>(server.target, '/hold', { method: 'POST', headers: { prefer: 'respond-async' } })),
      );
      const refused = starts.filter((s) => s.status !== 202);
      if (refused.length > 0)
        throw new Error(`${refused.length} of ${n} async starts refused, e.g. HTTP ${refused[0]?.status} ${JSON.stringify(refused[0]?.json)}`);
      const seen = await waitForRunning(holdScript, n);
      await delay(1000);
      aBusy = server.rss();
      const running = (await fetchJson<{ items: unknown[] }>(server.target, '/jobs?status=running&limit=500')).json.items.length;
      ctx.log(`  ${seen} scripts, ${running} jobs running: ${mib(aBusy)}`);
      await release(fx.holdGate, holdScript);
      await pollUntil('armhook jobs to finish', 30_000, 100, async () =>
        (await fetchJson<{ items: unknown[] }>(server.target, '/jobs?status=running&limit=500')).json.items.length === 0 ? true : undefined,
      );
      out.raw['armhook'] = { entry: server.entry, idle: aIdle, running: aBusy, jobsRunning: running, scripts: seen };
    } finally {
      rmSync(fx.holdGate, { force: true });
      await server.stop();
    }

    server = await startWebhook(fx, 'memory');
    try {
      await delay(2000);
      wIdle = server.rss();
      ctx.log(`webhook idle ${mib(wIdle)}; ${n} held requests`);
      const target = server.target;
      const replies: Promise<Reply>[] = Array.from({ length: n }, () => fetchText(target, '/hooks/hold', { method: 'POST', timeoutMs: 150_000 }));
      const settled = Promise.allSettled(replies);
      const seen = await waitForRunning(holdScript, n);
      await delay(1000);
      wBusy = server.rss();
      ctx.log(`  ${seen} scripts: ${mib(wBusy)}`);
      await release(fx.holdGate, holdScript);
      const results = await within('webhook replies', 30_000, settled);
      const ok = results.filter((r) => r.status === 'fulfilled' && r.value.status === 200 && r.value.body.includes('released')).length;
      out.raw['webhook'] = { idle: wIdle, running: wBusy, scripts: seen, okReplies: ok };
      if (ok !== n) out.notes.push(`webhook answered ${ok} of ${n} held requests with 200.`);
    } finally {
      rmSync(fx.holdGate, { force: true });
      await server.stop();
    }

    out.rows.push({
      scenario: '7. Memory: idle RSS',
      armhook: mib(aIdle),
      peer: mib(wIdle),
      ratio: fmtRatio(ratio(aIdle?.total, wIdle?.total)),
      goal: '≤ 80 MB (76.3 MiB)',
      met: aIdle ? aIdle.total <= 80 * MB : null,
    });
    out.rows.push({
      scenario: `7. Memory: RSS with ${n} jobs running`,
      armhook: mib(aBusy),
      peer: mib(wBusy),
      ratio: fmtRatio(ratio(aBusy?.total, wBusy?.total)),
      goal: '≤ 150 MB (143.1 MiB)',
      met: aBusy ? aBusy.total <= 150 * MB : null,
    });
    out.notes.push(
      `VmRSS from /proc: armhook = its node process + the spawn helper (python3), webhook = its one process; the hook scripts (sh + sleep) are not counted on either side. Idle = 2 s after start (armhook: after GET /readyz 200, i.e. identity and instance metadata obtained from the fakes, as on a VM). armhook ran with ARMHOOK_WORKERS=${n}; its ${n} jobs were started with Prefer: respond-async; webhook held ${n} concurrent requests open. This machine has ${Math.round(totalmem() / MiB)} MiB, not 1 GiB: RSS is what the processes touched, not what a small VM would allow.`,
    );
  },
};
