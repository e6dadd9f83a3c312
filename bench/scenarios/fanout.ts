/**
 * 5. Fan-out: many SSE tailers on GET /jobs/<id>/events of one job that prints 10 lines a second,
 * each with its emit time (`date +%s%N`). Every tailer must get every line and the done event;
 * lag = receive time − emit time over all tailers and lines.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Scenario } from '../lib/context.ts';
import { fetchJson, openStream, pollUntil, wallMs, within } from '../lib/http.ts';
import { delay, rssSampler } from '../lib/procs.ts';
import { fmtInt, fmtMs } from '../lib/report.ts';
import { startArmhook } from '../lib/servers.ts';
import { MiB, percentile } from '../lib/stats.ts';

interface Tailer {
  connected: boolean;
  ticks: Set<number>;
  done: boolean;
  ended: boolean;
  error?: string;
  destroy(): void;
}

const CONNECT_CONCURRENCY = 50;

export const fanout: Scenario = {
  id: '5',
  title: 'Fan-out',
  budgetMs: (c) => (c.fanoutLines / 10 + 150) * 1000,
  async run(ctx, out) {
    const { config, fx, fakes } = ctx;
    const lines = config.fanoutLines;
    const gate = join(fx.tmp, 'gates', `fanout-${Date.now()}`);
    // Every tailer comes from 127.0.0.1: lift the per-address and total connection caps above them.
    const caps = String(config.tailers + 64);
    const ah = await startArmhook(config, fx, 'fanout', {
      workers: 2,
      fakes,
      env: { ARMHOOK_MAX_CONNECTIONS: caps, ARMHOOK_MAX_CONNECTIONS_PER_ADDRESS: caps },
    });
    const agent = new Agent({ keepAlive: false, maxSockets: Infinity, ca: fx.cert });
    const tailers: Tailer[] = [];
    const lags: number[] = [];
    const loop = monitorEventLoopDelay({ resolution: 5 });
    try {
      const started = await fetchJson<{ jobId: string }>(ah.target, `/ticker?gate=${encodeURIComponent(gate)}&lines=${lines}`, {
        method: 'POST',
        headers: { prefer: 'respond-async' },
      });
      if (started.status !== 202 || !started.json.jobId) throw new Error(`starting the ticker job: HTTP ${started.status} ${JSON.stringify(started.json)}`);
      const jobId = started.json.jobId;
      ctx.log(`${config.tailers} tailers on one job, ${lines} lines at 10/s`);

      const connectOne = async (): Promise<void> => {
        const t: Tailer = { connected: false, ticks: new Set(), done: false, ended: false, destroy: () => undefined };
        tailers.push(t);
        try {
          const { res, destroy } = await openStream(ah.target, `/jobs/${jobId}/events`, { headers: { accept: 'text/event-stream' }, agent, timeoutMs: 30_000 });
          t.destroy = destroy;
          if (res.statusCode !== 200) {
            t.error = `HTTP ${res.statusCode}`;
            destroy();
            return;
          }
          let buffer = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            const now = wallMs();
            t.connected = true;
            buffer += chunk;
            let cut: number;
            while ((cut = buffer.indexOf('\n\n')) >= 0) {
              const block = buffer.slice(0, cut);
              buffer = buffer.slice(cut + 2);
              let event = 'message';
              let data = '';
              for (const line of block.split('\n')) {
                if (line.startsWith('event: ')) event = line.slice(7);
                else if (line.startsWith('data: ')) data = line.slice(6);
              }
              if (event === 'done') t.done = true;
              else if (event === 'message') {
                const m = /^tick (\d+) (\d+)$/.exec(data);
                if (m) {
                  t.ticks.add(Number(m[1]));
                  lags.push(now - Number(m[2]) / 1e6);
                }
              }
            }
          });
          res.on('end', () => (t.ended = true));
          res.on('error', (e) => (t.error = String(e)));
          res.on('aborted', () => (t.error ??= 'aborted'));
        } catch (error) {
          t.error = String(error);
        }
      };
      // Connect with bounded concurrency.
      const t0 = performance.now();
      let next = 0;
      await within(
        'connecting the tailers',
        90_000,
        Promise.all(
          Array.from({ length: Math.min(CONNECT_CONCURRENCY, config.tailers) }, async () => {
            while (next < config.tailers) {
              next += 1;
              await connectOne();
            }
          }),
        ),
      );
      await pollUntil('every tailer to receive the job event', 30_000, 50, () => (tailers.every((t) => t.connected || t.error) ? true : undefined)).catch(
        () => undefined,
      );
      const connectS = (performance.now() - t0) / 1000;
      const connected = tailers.filter((t) => t.connected).length;
      ctx.log(`  ${connected} connected in ${connectS.toFixed(1)} s; releasing the job`);

      const peak = rssSampler(ah.proc.pid, fx.scriptsDir, 500);
      const rss0 = ah.rss().total;
      const cpu0 = ah.cpuMs();
      loop.enable();
      writeFileSync(gate, '');
      const t1 = performance.now();
      await pollUntil('every tailer to get the done event', (lines / 10) * 1000 + 60_000, 100, () =>
        tailers.every((t) => t.done || t.error || t.ended) ? true : undefined,
      ).catch(() => undefined);
      const emitS = (performance.now() - t1) / 1000;
      loop.disable();
      const cpu = ah.cpuMs() - cpu0;
      const rssPeak = peak.stop();
      await delay(100);

      const complete = tailers.filter((t) => t.done && t.ticks.size === lines).length;
      const errors = tailers.filter((t) => t.error).map((t) => t.error);
      const p50 = percentile(lags, 50);
      const p99 = percentile(lags, 99);
      const max = percentile(lags, 100);
      ctx.log(`  ${complete}/${config.tailers} tailers got all ${lines} lines; lag p50 ${fmtMs(p50)}, p99 ${fmtMs(p99)}`);
      out.raw['armhook'] = {
        entry: ah.entry,
        tailers: config.tailers,
        lines,
        connected,
        connectSeconds: connectS,
        complete,
        errors: errors.slice(0, 10),
        errorCount: errors.length,
        samples: lags.length,
        lagMs: { p50, p90: percentile(lags, 90), p99, max, min: percentile(lags, 0) },
        emitSeconds: emitS,
        serverCpuMs: cpu,
        rss: { before: rss0, peak: rssPeak },
        benchEventLoopDelayMs: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
      };
      out.rows.push({
        scenario: `5. Fan-out (${fmtInt(config.tailers)} SSE tailers, 10 lines/s for ${lines / 10} s): p99 delivery lag`,
        armhook: `${fmtMs(p99)} (p50 ${fmtMs(p50)}); ${complete}/${config.tailers} tailers got all ${lines} lines`,
        peer: '— (webhook has no tail)',
        ratio: '—',
        goal: '< 200 ms; every tailer every event',
        met: Number.isFinite(p99) && p99 < 200 && complete === config.tailers,
      });
      out.notes.push(
        `Lag = the tailer's receive time (wall clock, when the chunk arrived) − the emit time the script printed (date +%s%N before echo), over ${fmtInt(lags.length)} samples; max ${fmtMs(max)}.`,
        `All tailers are in the bench process (${connected} connected in ${connectS.toFixed(1)} s, before the job started printing); its own event-loop delay p99 ${fmtMs(loop.percentile(99) / 1e6)} is part of the lag.`,
        `armhook used ${fmtInt(cpu)} ms CPU over the ${emitS.toFixed(1)} s of output; RSS ${(rss0 / MiB).toFixed(1)} → peak ${(rssPeak / MiB).toFixed(1)} MiB.`,
        ...(errors.length > 0 ? [`${errors.length} tailers failed, e.g. ${errors[0]}.`] : []),
      );
    } finally {
      loop.disable();
      for (const t of tailers) t.destroy();
      agent.destroy();
      rmSync(gate, { force: true });
      await ah.stop();
    }
  },
};
