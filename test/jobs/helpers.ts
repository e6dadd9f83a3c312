// Helpers shared by the job tests: an incremental SSE reader that can be waited on repeatedly,
// and job-level waits that follow observable events (a line, a done event, a status).
import type { JobRecord as ServerJobRecord } from '../../server/jobs/index.ts';
import assert from 'node:assert/strict';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { fetchText, open, parseSse, type RequestOptions, type SseEvent } from '../helpers/server.ts';

export type Target = { url: string; ca: string };

/** The server's record shape; tests also read fields the type doesn't name (e.g. jobId on done). */
export type JobRecord = ServerJobRecord & { [key: string]: unknown };

export const FINAL = ['succeeded', 'failed', 'timed-out', 'cancelled', 'interrupted'];

/**
 * Reads an SSE (or any text) response as it arrives. Unlike `readUntil`, it can be waited on
 * many times, and `close()` disconnects like a client that goes away.
 */
export class EventStream {
  readonly res: IncomingMessage;
  text = '';
  ended = false;
  readonly #waiters = new Set<() => void>();

  /** Events parsed so far, and the text after the last complete event. */
  readonly #parsed: SseEvent[] = [];
  #rest = '';

  constructor(res: IncomingMessage) {
    this.res = res;
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      this.text += chunk;
      // Parse only complete events (they end with a blank line), once each.
      this.#rest += chunk;
      const cut = this.#rest.lastIndexOf('\n\n');
      if (cut >= 0) {
        this.#parsed.push(...parseSse(this.#rest.slice(0, cut + 2)).events);
        this.#rest = this.#rest.slice(cut + 2);
      }
      this.#wake();
    });
    const end = (): void => {
      this.ended = true;
      this.#wake();
    };
    res.on('end', end);
    res.on('close', end);
    res.on('error', end);
  }

  static async open(target: Target, path: string, options: RequestOptions = {}): Promise<EventStream> {
    return new EventStream(await open(target, path, options));
  }

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  get jobId(): string {
    return String(this.res.headers['armhook-job-id'] ?? '');
  }

  /** Complete events received so far. */
  get events(): SseEvent[] {
    return [...this.#parsed];
  }

  /** stdout lines received so far. */
  get lines(): string[] {
    return this.events.filter((e) => e.event === 'message').map((e) => e.data);
  }

  /** Waits until `predicate(events)` holds; fails if the stream ends first. */
  async until(predicate: (events: SseEvent[]) => boolean, what = 'the expected events'): Promise<SseEvent[]> {
    for (;;) {
      const events = this.#parsed;
      if (predicate(events)) return [...events];
      if (this.ended) throw new Error(`the stream ended before ${what}; received:\n${this.text.slice(-4000)}`);
      await new Promise<void>((resolve) => {
        const w = (): void => {
          this.#waiters.delete(w);
          resolve();
        };
        this.#waiters.add(w);
      });
    }
  }

  /** Waits for a stdout line. */
  untilLine(line: string): Promise<SseEvent[]> {
    return this.until((events) => events.some((e) => e.event === 'message' && e.data === line), `the line ${JSON.stringify(line)}`);
  }

  /** Waits for the done event and the end of the response; returns the record it carries. */
  async done(): Promise<JobRecord> {
    await this.until((events) => events.some((e) => e.event === 'done'), 'the done event');
    await this.toEnd();
    const done = this.events.find((e) => e.event === 'done');
    return JSON.parse(done?.data ?? '{}') as JobRecord;
  }

  /** Waits until the server ends the response. */
  async toEnd(): Promise<SseEvent[]> {
    while (!this.ended) {
      await new Promise<void>((resolve) => {
        const w = (): void => {
          this.#waiters.delete(w);
          resolve();
        };
        this.#waiters.add(w);
      });
    }
    return this.events;
  }

  /** The client goes away. */
  close(): void {
    this.res.destroy();
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }
}

export async function getJob(target: Target, id: string): Promise<JobRecord> {
  const res = await fetchText(target, `/jobs/${id}`);
  assert.equal(res.status, 200, `GET /jobs/${id}: ${res.body}`);
  return res.json<JobRecord>();
}

/**
 * Polls GET /jobs/<id> until `predicate(record)` holds. Each poll is one request; the loop is
 * bounded by a number of polls, not by a clock, and throttled so it does not spin.
 */
export async function pollJob(target: Target, id: string, predicate: (record: JobRecord) => boolean, polls = 2000): Promise<JobRecord> {
  let record: JobRecord | undefined;
  for (let i = 0; i < polls; i++) {
    record = await getJob(target, id);
    if (predicate(record)) return record;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`job ${id} never reached the expected state; last: ${JSON.stringify(record)}`);
}

/** Polls a GET /jobs listing until an item satisfies `predicate` (bounded number of polls). */
export async function pollJobs(target: Target, path: string, predicate: (record: JobRecord) => boolean, polls = 2000): Promise<JobRecord> {
  for (let i = 0; i < polls; i++) {
    const res = await fetchText(target, path);
    assert.equal(res.status, 200, res.body);
    const found = res.json<{ items: JobRecord[] }>().items.find(predicate);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no job in ${path} matched`);
}

export function pollFinal(target: Target, id: string, polls = 2000): Promise<JobRecord> {
  return pollJob(target, id, (r) => FINAL.includes(r.status), polls);
}

/** Follows GET /jobs/<id>/events to the done event: waits for the job to end without polling. */
export async function waitDone(target: Target, id: string): Promise<JobRecord> {
  const stream = await EventStream.open(target, `/jobs/${id}/events`);
  assert.equal(stream.status, 200);
  return stream.done();
}

/** Follows GET /jobs/<id>/events until a stdout line shows up; returns the stream (still open). */
export async function waitLine(target: Target, id: string, line: string): Promise<EventStream> {
  const stream = await EventStream.open(target, `/jobs/${id}/events`);
  await stream.untilLine(line);
  return stream;
}

/** Sends a request without waiting for its response headers (JSON mode answers only at the end); `abort()` is the client going away. */
export function pending(target: Target, path: string, options: RequestOptions = {}): { req: ClientRequest; response: Promise<IncomingMessage>; abort(): void } {
  let req!: ClientRequest;
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req = httpsRequest(`${target.url}${path}`, { method: options.method ?? 'GET', headers: options.headers, ca: target.ca, agent: false }, resolve);
    req.on('error', reject);
    req.end(options.body);
  });
  response.catch(() => {});
  return { req, response, abort: () => req.destroy() };
}

/** POST with Prefer: respond-async; asserts 202 and returns the job id. */
export async function startAsync(target: Target, path: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetchText(target, path, { method: 'POST', headers: { Prefer: 'respond-async', ...headers } });
  assert.equal(res.status, 202, `POST ${path}: ${res.status} ${res.body}`);
  const id = res.json<{ id: string }>().id;
  assert.ok(id, res.body);
  return id;
}

/** The plain-text log of a job, as lines (without the trailing empty string). */
export async function logLines(target: Target, id: string): Promise<string[]> {
  const res = await fetchText(target, `/jobs/${id}/log`);
  assert.equal(res.status, 200, res.body);
  const lines = res.body.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** `<label> <pid>` lines printed by a script → pid. */
export function pidFrom(lines: string[], label: string): number {
  const line = lines.find((l) => l.startsWith(`${label} `));
  assert.ok(line, `no "${label} <pid>" line in:\n${lines.join('\n')}`);
  const pid = Number(line.slice(label.length + 1));
  assert.ok(Number.isInteger(pid) && pid > 1, line);
  return pid;
}

/** Ids of events as numbers; asserts each event has one. */
export function ids(events: SseEvent[]): number[] {
  return events.map((e) => {
    assert.ok(e.id !== undefined, `event without id: ${JSON.stringify(e)}`);
    return Number(e.id);
  });
}

/** Asserts ids are consecutive integers starting at `first`. */
export function assertConsecutive(events: SseEvent[], first: number): void {
  const got = ids(events);
  const want = got.map((_, i) => first + i);
  assert.deepEqual(got, want, 'event ids are consecutive, without gaps or duplicates');
}
