import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionError, readJson, type ServerClient } from './http.ts';
import { SseParser } from './sse.ts';

/** The parts of a job record the client acts on (the server sends the whole record). */
export interface JobSummary {
  id: string;
  hook: string;
  status: string;
  exitCode: number | null;
  error: { code: string; message: string } | null;
  [key: string]: unknown;
}

/** Where a job's events go: output lines to their streams, armhook's own notes to the person. */
export interface Sink {
  stdout(line: string): void;
  stderr(line: string): void;
  note(text: string): void;
  /** Resolves when the sink can take more (a slow pipe holds the stream, not memory). */
  drained(): Promise<void>;
}

/** Where a stream of a job stands: the last event id received, once the job id is known. */
export interface Position {
  jobId: string;
  lastId: number;
}

/**
 * Reads one SSE response to its end, handing events to the sink in order. Resolves with the
 * `done` record, or undefined when the stream ended or dropped before it (the position tells
 * where to resume). Events at or before the position (a resumed stream) are skipped, so a line
 * is never written twice.
 */
export async function consumeEvents(body: IncomingMessage, position: Position, sink: Sink): Promise<JobSummary | undefined> {
  const parser = new SseParser();
  body.setEncoding('utf8');
  try {
    for await (const chunk of body) {
      for (const message of parser.push(chunk as string)) {
        const id = message.id === undefined ? undefined : Number(message.id);
        if (id !== undefined) {
          if (id <= position.lastId) continue;
          position.lastId = id;
        }
        const done = deliver(message.event, message.data, position, sink);
        if (done) return done;
      }
      await sink.drained();
    }
  } catch {
    // reset, aborted, idle timeout: the caller resumes from the position
  }
  return undefined;
}

function deliver(event: string, data: string, position: Position, sink: Sink): JobSummary | undefined {
  switch (event) {
    case 'message':
      sink.stdout(data);
      return undefined;
    case 'stderr':
      sink.stderr(data);
      return undefined;
    case 'job': {
      const job = JSON.parse(data) as { jobId?: string };
      if (job.jobId) position.jobId = job.jobId;
      return undefined;
    }
    case 'queued':
      sink.note(`queued, position ${(JSON.parse(data) as { position: number }).position}`);
      return undefined;
    case 'progress':
      sink.note(`progress ${data}`);
      return undefined;
    case 'done':
      return JSON.parse(data) as JobSummary;
    default:
      return undefined;
  }
}

export interface ResumeOptions {
  /** Reconnection attempts in a row without receiving anything, before giving up. */
  attempts: number;
  /** The first wait between attempts, doubled each time up to 5 s. */
  firstDelayMs: number;
}

export const DEFAULT_RESUME: ResumeOptions = { attempts: 12, firstDelayMs: 250 };

/**
 * Follows a job through GET /jobs/<id>/events from the position, reconnecting with
 * Last-Event-ID whenever the connection drops, until the `done` event. A 204 (the job ended and
 * nothing is left to send) is answered with the record from GET /jobs/<id>.
 */
export async function followJob(client: ServerClient, base: URL, position: Position, sink: Sink, options: ResumeOptions = DEFAULT_RESUME): Promise<JobSummary> {
  const events = new URL(`jobs/${encodeURIComponent(position.jobId)}/events`, base);
  let failures = 0;
  let lastProblem = '';
  while (failures < options.attempts) {
    if (failures > 0) await sleep(Math.min(options.firstDelayMs * 2 ** (failures - 1), 5000));
    const before = position.lastId;
    try {
      const answer = await client.request('GET', events, {
        Accept: 'text/event-stream',
        ...(position.lastId > 0 ? { 'Last-Event-ID': String(position.lastId) } : {}),
      });
      if (answer.status === 204) {
        answer.body.resume();
        return await jobRecord(client, base, position.jobId);
      }
      if (answer.status !== 200) throw new RefusedError(answer.status, await readJson(answer.body));
      const done = await consumeEvents(answer.body, position, sink);
      if (done) return done;
      lastProblem = 'the stream ended before the job did';
    } catch (err) {
      if (!(err instanceof ConnectionError)) throw err;
      lastProblem = err.message;
    }
    failures = position.lastId > before ? 1 : failures + 1;
    sink.note(`connection lost (${lastProblem}); resuming job ${position.jobId} after event ${position.lastId}`);
  }
  throw new ConnectionError(
    `gave up resuming job ${position.jobId} after ${options.attempts} attempts (${lastProblem}); \`armhook logs ${position.jobId} --follow\` picks it up again`,
  );
}

async function jobRecord(client: ServerClient, base: URL, id: string): Promise<JobSummary> {
  const answer = await client.json<unknown>('GET', new URL(`jobs/${encodeURIComponent(id)}`, base));
  if (answer.status !== 200) throw new RefusedError(answer.status, answer.body);
  return answer.body as JobSummary;
}

/** The server answered, and refused (4xx) or failed (5xx): its `{ error, message }` says why. */
export class RefusedError extends Error {
  override name = 'RefusedError';
  readonly status: number;
  readonly code: string;
  constructor(status: number, body: unknown) {
    const { error, message } = (body ?? {}) as { error?: string; message?: string };
    super(message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error ?? `http_${status}`;
  }
}
