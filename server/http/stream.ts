import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { JobEvent, JobLog } from '../jobs/index.ts';

export type StreamFormat = 'sse' | 'text';

/** Takes the response over from fastify and sends a stream's headers: no caching, no proxy buffering. */
export function openStream(reply: FastifyReply, format: StreamFormat, jobId: string): ServerResponse {
  reply.hijack();
  reply.raw.writeHead(200, {
    'Content-Type': format === 'sse' ? 'text/event-stream; charset=utf-8' : 'text/plain; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    'X-Accel-Buffering': 'no',
    'Armhook-Job-Id': jobId,
  });
  return reply.raw;
}

/**
 * One SSE event. Every event has an id; stdout is the default event (no `event:` field). Output
 * lines never contain CR or LF (see LineSplitter), so each is exactly one `data:` field and can't
 * start another field or event.
 */
export function sseFrame(event: JobEvent): string {
  const type = event.event === 'stdout' ? '' : `event: ${event.event}\n`;
  return `id: ${event.id}\n${type}data: ${event.data}\n\n`;
}

/** The plain-text form: output lines as they are, armhook's own lines prefixed, a final status line. */
export function textLine(event: JobEvent): string {
  switch (event.event) {
    case 'stdout':
    case 'stderr':
      return `${event.data}\n`;
    case 'progress':
      return `armhook: progress ${event.data}\n`;
    case 'queued': {
      const { position } = JSON.parse(event.data) as { position: number };
      return `armhook: queued, position ${position}\n`;
    }
    case 'job':
      return '';
    case 'done': {
      const record = JSON.parse(event.data) as { id: string; status: string; exitCode: number | null; error: { message: string } | null };
      const exit = record.exitCode === null ? 'no exit code' : `exit code ${record.exitCode}`;
      return `armhook: job ${record.id} ${record.status} (${exit})${record.error && record.status !== 'failed' ? `: ${record.error.message}` : ''}\n`;
    }
  }
}

export interface StreamOptions {
  format: StreamFormat;
  /** Events after this id are sent (0: from the start). */
  afterId: number;
  /** SSE only: a comment line this often keeps idle connections open through load balancers. */
  keepAliveMs: number;
  /** Stop at what exists now instead of following a live job to its end. */
  snapshot?: boolean;
  /** Only these events are written. */
  filter?: (event: JobEvent) => boolean;
}

/**
 * Writes a job's events to a response until the job's log ends or the client goes away. Pulls
 * from the log at the socket's pace: when the socket is full it waits for 'drain', so a slow
 * reader holds one batch at most; the job itself never waits for readers.
 */
export async function streamJob(res: ServerResponse, log: JobLog, options: StreamOptions): Promise<void> {
  const gone = new AbortController();
  const onClose = (): void => gone.abort();
  res.once('close', onClose);
  const keepAlive =
    options.format === 'sse'
      ? setInterval(() => {
          if (!res.writableNeedDrain) res.write(': keep-alive\n\n');
        }, options.keepAliveMs)
      : undefined;
  keepAlive?.unref();
  const format = options.format === 'sse' ? sseFrame : textLine;
  const reader = log.reader(options.afterId);
  try {
    while (!gone.signal.aborted) {
      // A batch is one write: large enough that TLS records and syscalls are full, bounded by
      // the reader's step (see LogReader), so a slow client holds one batch at most.
      const batch = await reader.next(4096);
      if (batch === null) break;
      if (batch.length === 0) {
        if (options.snapshot) break;
        await log.waitFor(reader.afterId, gone.signal);
        // One turn of the event loop before reading: what the job appends in the same turn (its
        // output, then its end) goes out as one write — one TLS record and syscall, not several.
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      let text = '';
      for (const event of batch) if (!options.filter || options.filter(event)) text += format(event);
      if (text !== '' && !res.write(text)) await drained(res, gone.signal);
    }
  } finally {
    await reader.close();
    if (keepAlive) clearInterval(keepAlive);
    res.off('close', onClose);
    if (!res.writableEnded) res.end();
  }
}

function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
