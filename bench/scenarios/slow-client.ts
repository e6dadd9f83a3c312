/**
 * 4. Slow client: an SSE client of a big job reads 1 KB/s; the server must hold its memory (RSS
 * growth measured from /proc) and the job must still complete.
 */
import type { Scenario } from '../lib/context.ts';
import { fetchJson, fetchText, openStream, pollUntil } from '../lib/http.ts';
import { delay, rssSampler } from '../lib/procs.ts';
import { fmt1 } from '../lib/report.ts';
import { startArmhook } from '../lib/servers.ts';
import { MB, MiB } from '../lib/stats.ts';

interface JobRecord {
  status: string;
  error: { code: string; message: string } | null;
  durationMs: number | null;
  endedAt: string | null;
}

export const slowClient: Scenario = {
  id: '4',
  title: 'Slow client',
  budgetMs: (c) => (c.slowSeconds + 150) * 1000,
  async run(ctx, out) {
    const { config, fx, fakes } = ctx;
    const n = config.slowBytes;
    const ah = await startArmhook(config, fx, 'slow-client', { workers: 2, fakes });
    try {
      // Warm the paths the measurement uses, then let the server settle.
      await fetchText(ah.target, '/stream?bytes=100000', { method: 'POST', headers: { accept: 'text/event-stream' } });
      await fetchText(ah.target, '/echo', { method: 'POST', headers: { accept: 'application/json' } });
      await delay(1000);
      const before = ah.rss();
      const peak = rssSampler(ah.proc.pid, fx.scriptsDir, 500);
      ctx.log(`SSE client of a ${n / MB} MB job reading ${config.slowBytesPerSecond} B/s for ${config.slowSeconds} s`);
      const { res, destroy } = await openStream(ah.target, `/stream?bytes=${n}`, { method: 'POST', headers: { accept: 'text/event-stream' } });
      const jobId = String(res.headers['armhook-job-id'] ?? '');
      if (res.statusCode !== 200 || !jobId) {
        destroy();
        throw new Error(`slow client: HTTP ${res.statusCode}, no job id`);
      }
      // Paused stream: take a quarter of the rate every 250 ms.
      res.pause();
      let read = 0;
      const step = Math.max(1, Math.round(config.slowBytesPerSecond / 4));
      const reader = setInterval(() => {
        const chunk = res.read(step) as Buffer | null;
        if (chunk) read += chunk.length;
      }, 250);
      let statusWhileAttached: JobRecord | undefined;
      let endedWhileAttachedAfterS: number | undefined;
      const t0 = performance.now();
      try {
        while (performance.now() - t0 < config.slowSeconds * 1000) {
          await delay(1000);
          if (endedWhileAttachedAfterS === undefined) {
            const r = await fetchJson<JobRecord>(ah.target, `/jobs/${jobId}`);
            if (r.json.status !== 'running' && r.json.status !== 'queued') endedWhileAttachedAfterS = (performance.now() - t0) / 1000;
          }
        }
        statusWhileAttached = (await fetchJson<JobRecord>(ah.target, `/jobs/${jobId}`)).json;
      } finally {
        clearInterval(reader);
      }
      const end = ah.rss();
      const peakTotal = peak.stop();
      destroy();
      const final = await pollUntil("the slow client's job to end", 120_000, 250, async () => {
        const r = await fetchJson<JobRecord>(ah.target, `/jobs/${jobId}`);
        return r.json.status === 'running' || r.json.status === 'queued' ? undefined : r.json;
      });
      const growth = end.total - before.total;
      const peakGrowth = peakTotal - before.total;
      ctx.log(`  RSS ${fmt1(before.total / MiB)} → ${fmt1(end.total / MiB)} MiB (peak ${fmt1(peakTotal / MiB)}); job ${final.status}`);
      out.raw['armhook'] = {
        entry: ah.entry,
        jobBytes: n,
        seconds: config.slowSeconds,
        clientReadBytes: read,
        rssBefore: before,
        rssEnd: end,
        rssPeakTotal: peakTotal,
        growthBytes: growth,
        peakGrowthBytes: peakGrowth,
        statusWhileAttached,
        endedWhileAttachedAfterS: endedWhileAttachedAfterS ?? null,
        final,
      };
      const ok = final.status === 'succeeded';
      out.rows.push({
        scenario: `4. Slow client (${config.slowBytesPerSecond / 1024} KB/s for ${config.slowSeconds} s, ${n / MB} MB job): server RSS growth`,
        armhook: `${growth >= 0 ? '+' : ''}${fmt1(growth / MiB)} MiB (peak +${fmt1(peakGrowth / MiB)}); job ${final.status}`,
        peer: '— (not measured)',
        ratio: '—',
        goal: '< 50 MB (47.7 MiB); job completes',
        met: growth < 50 * MB && ok,
      });
      out.notes.push(
        `RSS = armhook's node process plus its spawn helper, from /proc/<pid>/status VmRSS: ${fmt1(before.total / MiB)} MiB before (after a warm-up job), ${fmt1(end.total / MiB)} MiB after ${config.slowSeconds} s of the slow client, peak ${fmt1(peakTotal / MiB)} MiB (sampled every 0.5 s).`,
        endedWhileAttachedAfterS !== undefined
          ? `The job ended (${statusWhileAttached?.status}, ${final.durationMs} ms) while the slow client was still reading (seen after ${endedWhileAttachedAfterS.toFixed(0)} s): the script never waits for readers.`
          : `The job had not ended after ${config.slowSeconds} s with the slow client attached (status ${statusWhileAttached?.status}); after the client left it ended ${final.status}.`,
        `The client read ${read} bytes of the stream.`,
        ...(ok ? [] : [`**The job ${final.status}**: ${final.error ? `${final.error.code}: ${final.error.message}` : 'no error recorded'}.`]),
      );
    } finally {
      await ah.stop();
    }
  },
};
