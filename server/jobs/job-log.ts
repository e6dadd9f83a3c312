import type { IdempotencyClaim, JobStore } from './job-store.ts';
import type { JobEvent, JobEventType, JobRecord } from './types.ts';

/**
 * How much of the newest output stays in memory for live readers; older output is read from the
 * store. Large enough for a few whole chunks of output (a 64 KiB chunk of 80-column lines is ~800
 * events), so a reader keeping up with a fast job reads memory, not the store.
 */
const TAIL_EVENTS = 4096;
const TAIL_CHARS = 1024 * 1024;

export interface JobLogHooks {
  /** The store could not keep an event (disk full): the job should stop. Heard once. */
  onStorageFailure?: (err: Error) => void;
  /** A reader opened (+1) or closed (-1): retention keeps a job while someone reads it. */
  onReaders?: (delta: 1 | -1) => void;
}

/**
 * A job's events as readers see them: what the store has, plus — for a job running here — the
 * newest events in memory, so a thousand tailers of one job read memory, not the store. An event
 * is shown to readers once the store committed it, so what a reader saw a replay shows too; a
 * reader that falls behind the memory tail reads the rest from the store in batches.
 */
export class JobLog {
  readonly id: string;
  readonly #store: JobStore;
  readonly #hooks: JobLogHooks;
  /** Last id given to an event (stored or on its way). */
  #assigned: number;
  /** Last id readers may see (committed, or the final event kept in memory). */
  #lastId: number;
  #ended: boolean;
  #failure: Error | undefined;
  readonly #tail: JobEvent[] = [];
  #tailChars = 0;
  readonly #waiters = new Set<() => void>();

  private constructor(store: JobStore, id: string, lastId: number, ended: boolean, hooks: JobLogHooks) {
    this.#store = store;
    this.id = id;
    this.#assigned = lastId;
    this.#lastId = lastId;
    this.#ended = ended;
    this.#hooks = hooks;
  }

  /** A new job's log: stores the record with its first events; resolves once committed. */
  static async create(
    store: JobStore,
    record: JobRecord,
    items: ReadonlyArray<{ event: JobEventType; data: string }>,
    hooks: JobLogHooks = {},
    idempotency?: IdempotencyClaim,
  ): Promise<JobLog> {
    const log = new JobLog(store, record.id, 0, false, hooks);
    const events = log.#number(items);
    await store.create(record, events, idempotency);
    log.#show(events);
    return log;
  }

  /** A job's log that is still open for writing (a job a restart found unfinished); `lastId` from the store. */
  static reopen(store: JobStore, id: string, lastId: number, hooks: JobLogHooks = {}): JobLog {
    return new JobLog(store, id, lastId, false, hooks);
  }

  /** A finished job's log: everything comes from the store (`lastId`: its last stored event). */
  static stored(store: JobStore, id: string, lastId: number, hooks: JobLogHooks = {}): JobLog {
    return new JobLog(store, id, lastId, true, hooks);
  }

  get lastId(): number {
    return this.#lastId;
  }

  get ended(): boolean {
    return this.#ended;
  }

  #number(items: ReadonlyArray<{ event: JobEventType; data: string }>): JobEvent[] {
    const at = Date.now();
    return items.map((item) => ({ id: ++this.#assigned, event: item.event, data: item.data, at }));
  }

  /**
   * Appends events: stored in this turn's transaction, shown to readers once committed. After a
   * storage failure nothing more is stored or shown (the job is being stopped).
   */
  append(items: ReadonlyArray<{ event: JobEventType; data: string }>): void {
    if (this.#ended || this.#failure || items.length === 0) return;
    const events = this.#number(items);
    let committed: Promise<void>;
    try {
      committed = this.#store.append(this.id, events);
    } catch (err) {
      this.#fail(err as Error);
      return;
    }
    committed.then(
      () => this.#show(events),
      (err: unknown) => this.#fail(err as Error),
    );
  }

  /** Stores a change of a running job's record; a failure stops the job like one of output. */
  update(record: JobRecord): void {
    if (this.#failure) return;
    try {
      this.#store.update(record).catch((err: unknown) => this.#fail(err as Error));
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  #fail(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    // What was not committed is not shown: the next event (done) follows the last one shown.
    this.#assigned = this.#lastId;
    this.#hooks.onStorageFailure?.(err);
  }

  /**
   * Ends the log with `done` carrying the final record. Resolves true once stored; false when the
   * store could not keep it (readers still get it from memory; the caller retries storing it).
   */
  async finish(record: JobRecord): Promise<{ stored: boolean; done: JobEvent }> {
    const [done] = this.#number([{ event: 'done', data: JSON.stringify({ jobId: record.id, ...record }) }]) as [JobEvent];
    let stored = true;
    try {
      await this.#store.finish(record, done);
    } catch (err) {
      stored = false;
      this.#fail(err as Error);
    }
    this.#show([done]);
    this.#ended = true;
    this.#wake();
    return { stored, done };
  }

  #show(events: JobEvent[]): void {
    for (const event of events) {
      this.#tail.push(event);
      this.#tailChars += event.data.length;
    }
    this.#lastId = events.at(-1)?.id ?? this.#lastId;
    let drop = 0;
    while (drop < this.#tail.length - 1 && (this.#tail.length - drop > TAIL_EVENTS || this.#tailChars > TAIL_CHARS))
      this.#tailChars -= (this.#tail[drop++] as JobEvent).data.length;
    if (drop > 0) this.#tail.splice(0, drop);
    this.#wake();
  }

  /** Resolves when an event after `afterId` exists or the log ended (or `signal` aborts). */
  waitFor(afterId: number, signal?: AbortSignal): Promise<void> {
    if (this.#lastId > afterId || this.#ended || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.#waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /**
   * A cursor over the events after `afterId`. `next()` returns the next batch, an empty array when
   * the reader has caught up with a live job, and null once the log has ended and all was read.
   */
  reader(afterId: number): LogReader {
    this.#hooks.onReaders?.(1);
    return new LogReader(this, afterId, () => this.#hooks.onReaders?.(-1));
  }

  /** @internal the events after `afterId`, from memory when the tail reaches back that far, else the store. */
  async read(afterId: number, max: number): Promise<JobEvent[]> {
    const first = this.#tail[0]?.id;
    if (first !== undefined && afterId + 1 >= first) return this.#tail.slice(afterId + 1 - first, afterId + 1 - first + max);
    // Never past what readers may see: the store's connection also sees writes not yet committed.
    const stored = (await this.#store.events(this.id, afterId, max)).filter((event) => event.id <= this.#lastId);
    if (stored.length > 0 || first === undefined) return stored;
    // Nothing stored after afterId, yet the tail starts later: only the final event was kept in memory.
    return this.#tail.slice(0, max);
  }
}

export class LogReader {
  readonly #log: JobLog;
  #afterId: number;
  #release: (() => void) | undefined;

  constructor(log: JobLog, afterId: number, release: () => void) {
    this.#log = log;
    this.#afterId = afterId;
    this.#release = release;
  }

  get afterId(): number {
    return this.#afterId;
  }

  async next(maxEvents = 256): Promise<JobEvent[] | null> {
    const ended = this.#log.ended;
    if (this.#afterId >= this.#log.lastId) return ended ? null : [];
    const events = await this.#log.read(this.#afterId, maxEvents);
    const last = events.at(-1);
    if (!last) return ended ? null : [];
    this.#afterId = last.id;
    return events;
  }

  async close(): Promise<void> {
    this.#release?.();
    this.#release = undefined;
  }
}
