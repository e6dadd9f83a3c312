/**
 * 3. Streaming throughput: a script writes N bytes of 80-character lines; one SSE client reads as
 * fast as it can. References: the same bytes as GET /jobs/<id>/log from the same server over the
 * same TLS (armhook has no static-file route; this one reads the job's file back), and the same
 * bytes as a file from a bare Node https server (same Node, same certificate).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Scenario } from '../lib/context.ts';
import { fetchJson, fetchText, openStream, pollUntil, within, type Target } from '../lib/http.ts';
import { freePort, rssSampler, startProc, stopProc } from '../lib/procs.ts';
import { fmt1, fmtRatio } from '../lib/report.ts';
import { startArmhook, STREAM_LINE } from '../lib/servers.ts';
import { MB, MiB, ratio } from '../lib/stats.ts';

export interface Transfer {
  /** Bytes on the wire (body). */
  bytes: number;
  seconds: number;
  status: number;
  jobId: string | undefined;
  /** The last bytes of the body. */
  tail: string;
}

/** Reads a whole response as fast as possible, keeping only its size and its tail. */
export async function transfer(
  target: Target,
  path: string,
  options: { method?: string; headers?: Record<string, string>; timeoutMs: number },
): Promise<Transfer> {
  const t0 = performance.now();
  const { res, destroy } = await openStream(target, path, { method: options.method ?? 'GET', headers: options.headers ?? {}, timeoutMs: options.timeoutMs });
  let bytes = 0;
  let tail: Buffer = Buffer.alloc(0);
  try {
    await within(
      `reading ${path}`,
      options.timeoutMs,
      new Promise<void>((resolve, reject) => {
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          tail = chunk.length >= 4096 ? chunk.subarray(chunk.length - 4096) : Buffer.concat([tail, chunk]).subarray(-4096);
        });
        res.on('end', resolve);
        res.on('error', reject);
        res.on('aborted', () => reject(new Error(`${path}: connection closed early`)));
      }),
    );
  } finally {
    destroy();
  }
  const jobId = res.headers['armhook-job-id'];
  return {
    bytes,
    seconds: (performance.now() - t0) / 1000,
    status: res.statusCode ?? 0,
    jobId: typeof jobId === 'string' ? jobId : undefined,
    tail: tail.toString('utf8'),
  };
}

export const streaming: Scenario = {
  id: '3',
  title: 'Streaming throughput',
  budgetMs: (c) => 60_000 + (c.streamBytes / MB) * 3 * 1000,
  async run(ctx, out) {
    const { config, fx, fakes } = ctx;
    const n = config.streamBytes;
    const timeoutMs = Math.max(60_000, (n / MB) * 1000); // ≥ 1 MB/s
    const ah = await startArmhook(config, fx, 'streaming', { workers: 4, fakes });
    let sseMBps: number | undefined;
    let logMBps: number | undefined;
    let fileMBps: number | undefined;
    try {
      // warm the run path once
      await fetchText(ah.target, '/stream?bytes=1000', { method: 'POST', headers: { accept: 'application/json' } });
      ctx.log(`SSE: ${n / MB} MB of script output`);
      const peak = rssSampler(ah.proc.pid, fx.scriptsDir);
      const rss0 = ah.rss().total;
      const sse = await transfer(ah.target, `/stream?bytes=${n}`, { method: 'POST', headers: { accept: 'text/event-stream' }, timeoutMs });
      const rssPeak = peak.stop();
      if (sse.status !== 200 || !sse.jobId) throw new Error(`SSE stream: HTTP ${sse.status}`);
      if (!/event: done\ndata: [^\n]*"status":"succeeded"/.test(sse.tail))
        throw new Error(`SSE stream did not end with a succeeded done event: …${sse.tail.slice(-300)}`);
      const record = await pollUntil('the job record to say succeeded', 30_000, 100, async () => {
        const r = await fetchJson<{ status: string; durationMs: number }>(ah.target, `/jobs/${sse.jobId}`);
        return r.json.status === 'succeeded' ? r.json : undefined;
      });
      sseMBps = n / MB / sse.seconds;
      ctx.log(`  ${fmt1(sseMBps)} MB/s; GET /jobs/<id>/log`);
      const log = await transfer(ah.target, `/jobs/${sse.jobId}/log`, { timeoutMs });
      if (log.status !== 200 || log.bytes < n) throw new Error(`GET /jobs/<id>/log: HTTP ${log.status}, ${log.bytes} bytes (expected ≥ ${n})`);
      logMBps = log.bytes / MB / log.seconds;
      ctx.log(`  ${fmt1(logMBps)} MB/s`);
      out.raw['armhook'] = {
        entry: ah.entry,
        scriptBytes: n,
        sse: { wireBytes: sse.bytes, seconds: sse.seconds, scriptMBps: sseMBps, wireMBps: sse.bytes / MB / sse.seconds, jobDurationMs: record.durationMs },
        log: { bytes: log.bytes, seconds: log.seconds, MBps: logMBps },
        rss: { before: rss0, peakDuringSse: rssPeak },
      };
    } finally {
      await ah.stop();
    }

    // The bare-Node reference, same bytes from a file.
    const file = join(fx.tmp, 'stream-reference.txt');
    execFileSync('sh', ['-c', `yes '${STREAM_LINE}' | head -c ${n} > '${file}'`]);
    const port = await freePort();
    const ref = startProc(
      'static-reference',
      process.execPath,
      [join(config.benchDir, 'lib', 'static-server.ts'), String(port), file, fx.certFile, fx.keyFile],
      {
        logFile: join(fx.logsDir, 'static-reference.log'),
      },
    );
    try {
      const target: Target = { base: `https://127.0.0.1:${port}`, ca: fx.cert };
      await pollUntil('the static reference server', 20_000, 20, async () =>
        (await fetchText(target, '/healthz', { fresh: true, timeoutMs: 2000 }).catch(() => undefined))?.status === 200 ? true : undefined,
      );
      ctx.log('static file, bare Node https');
      const f = await transfer(target, '/file', { timeoutMs });
      if (f.status !== 200 || f.bytes !== n) throw new Error(`static reference: HTTP ${f.status}, ${f.bytes} bytes`);
      fileMBps = n / MB / f.seconds;
      ctx.log(`  ${fmt1(fileMBps)} MB/s`);
      out.raw['staticReference'] = { bytes: f.bytes, seconds: f.seconds, MBps: fileMBps };
    } finally {
      await stopProc(ref, { graceMs: 3000 });
    }

    const vsLog = ratio(sseMBps, logMBps);
    const vsFile = ratio(sseMBps, fileMBps);
    out.rows.push({
      scenario: `3. Streaming ${n / MB} MB, one SSE client vs GET /jobs/<id>/log (same server, same TLS)`,
      armhook: `${fmt1(sseMBps)} MB/s`,
      peer: `${fmt1(logMBps)} MB/s (log)`,
      ratio: fmtRatio(vsLog),
      goal: '≥ 0.50×',
      met: vsLog === null ? null : vsLog >= 0.5,
    });
    out.rows.push({
      scenario: `3. Streaming ${n / MB} MB, SSE vs static file from a bare Node https server (same Node, same cert)`,
      armhook: `${fmt1(sseMBps)} MB/s`,
      peer: `${fmt1(fileMBps)} MB/s (file)`,
      ratio: fmtRatio(vsFile),
      goal: '≥ 0.50×',
      met: vsFile === null ? null : vsFile >= 0.5,
    });
    const rssInfo = out.raw['armhook'] as { rss?: { before: number; peakDuringSse: number } } | undefined;
    out.notes.push(
      "MB/s counts the script's output bytes (SSE framing adds id:/data: lines on the wire) over the time from sending the request to the end of the stream, so it includes running the script.",
      "armhook has no static-file route: GET /jobs/<id>/log of the finished job (plain text read back from the job's file, the same reader the SSE stream uses) is the same-server reference; the bare Node https server sending the same bytes from a file with fs streams is the transport's own limit in Node on this machine.",
      ...(rssInfo?.rss ? [`Server RSS during the SSE stream: ${fmt1(rssInfo.rss.before / MiB)} → peak ${fmt1(rssInfo.rss.peakDuringSse / MiB)} MiB.`] : []),
    );
  },
};
