import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { JobEvent, JobEventType } from './types.ts';

/** How much of the newest output stays in memory for live readers. Older output is read from disk. */
const TAIL_EVENTS = 512;
const TAIL_BYTES = 256 * 1024;
const READ_CHUNK = 64 * 1024;
const MAX_READ = 16 * 1024 * 1024;

interface TailEntry {
  event: JobEvent;
  /** Byte offset of the line after this event. */
  end: number;
  size: number;
}

/**
 * A job's output: an append-only file of JSON lines (one event each, with its id), plus a bounded
 * in-memory tail for live readers. Readers pull at their own pace (see `reader`), so a slow reader
 * holds at most one read chunk, never the job's output.
 *
 * Creating a file is the slowest thing a job does to the disk (often more than spawning), so a new
 * log's file is opened off the event loop; until it is open, lines wait in memory (and stay in the
 * tail, which never drops what is not on disk yet). From then on every append is one synchronous
 * write to the open file, so readers and crashes see everything appended so far.
 */
export class JobLog {
  readonly file: string;
  #fd: number | undefined;
  /** Text appended before the file was open. */
  #pending: string[] = [];
  #endRequested = false;
  #lastId: number;
  /** Bytes appended (the file's size once everything is written). */
  #bytes: number;
  /** Bytes actually in the file. */
  #flushed: number;
  #ended: boolean;
  readonly #tail: TailEntry[] = [];
  #tailBytes = 0;
  readonly #waiters = new Set<() => void>();

  private constructor(file: string, fd: number | undefined, lastId: number, bytes: number, ended: boolean) {
    this.file = file;
    this.#fd = fd;
    this.#lastId = lastId;
    this.#bytes = bytes;
    this.#flushed = bytes;
    this.#ended = ended;
  }

  /**
   * A new log for a job about to be accepted, starting with its record. `onError` hears when the
   * file can't be created (the job still runs; its output then lives only in memory, bounded).
   */
  static create(file: string, record: object, onError: (err: Error) => void): JobLog {
    const log = new JobLog(file, undefined, 0, 0, false);
    log.#onError = onError;
    log.writeRecord(record);
    log.stored = open(file, 'wx', 0o600).then(
      (handle) => log.#opened(handle.fd, handle),
      (err: Error) => {
        onError(err);
        log.#pending = [];
        log.#flushed = log.#bytes;
        log.#failed = true;
        if (log.#endRequested) log.#close();
      },
    );
    return log;
  }

  /**
   * Resolves once the job's file exists with everything appended so far (or could not be
   * created), so a caller can be told "accepted" only when a crash would no longer lose the job.
   */
  stored: Promise<void> = Promise.resolve();

  #failed = false;
  #onError: ((err: Error) => void) | undefined;
  #handle: { close(): Promise<void> } | undefined;

  #opened(fd: number, handle: { close(): Promise<void> }): void {
    this.#handle = handle;
    this.#fd = fd;
    if (this.#pending.length > 0) {
      const text = this.#pending.join('');
      this.#pending = [];
      writeSync(fd, text);
    }
    this.#flushed = this.#bytes;
    this.#trimTail();
    if (this.#endRequested) this.#close();
  }

  #write(text: string, bytes: number): void {
    this.#bytes += bytes;
    if (this.#fd !== undefined) {
      try {
        writeSync(this.#fd, text);
      } catch (err) {
        // Disk full or an I/O error: the job goes on, its output from here lives only in the
        // (bounded) memory tail; the server must not fall over because one file can't grow.
        this.#onError?.(err as Error);
        this.#onError = undefined;
        this.#failed = true;
      }
      this.#flushed = this.#bytes;
    } else if (!this.#failed) {
      this.#pending.push(text);
    } else {
      this.#flushed = this.#bytes;
    }
  }

  /** The log of a job from disk (finished, or interrupted by a restart: `reopen` lets it append the end). */
  static async load(file: string, options: { reopen: boolean }): Promise<JobLog> {
    let lastId = 0;
    try {
      const scan = new JobLog(file, undefined, Number.MAX_SAFE_INTEGER, 0, true);
      const reader = scan.reader(0);
      try {
        for (let batch = await reader.next(); batch; batch = await reader.next()) {
          const last = batch.at(-1);
          if (last) lastId = last.id;
        }
      } finally {
        await reader.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (!options.reopen) return new JobLog(file, undefined, lastId, 0, true);
    const fd = openSync(file, 'a', 0o600);
    return new JobLog(file, fd, lastId, fstatSync(fd).size, false);
  }

  get lastId(): number {
    return this.#lastId;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Records the job's record in the same file (a line without an event id, which readers skip):
   * one open file per job and appends only, because creating and renaming files is what costs
   * most on a busy disk. The last record line (or the `done` event) is the job's state.
   */
  writeRecord(record: object): void {
    if (this.#endRequested) return;
    const line = `${JSON.stringify({ record })}\n`;
    this.#write(line, Buffer.byteLength(line));
  }

  /** Appends events (one disk write for the batch) and wakes live readers. Returns the last id. */
  append(items: ReadonlyArray<{ event: JobEventType; data: string }>): number {
    if (this.#endRequested || items.length === 0) return this.#lastId;
    const at = Date.now();
    let text = '';
    let end = this.#bytes;
    const added: TailEntry[] = [];
    for (const item of items) {
      const event: JobEvent = { id: ++this.#lastId, event: item.event, data: item.data, at };
      const line = `${JSON.stringify(event)}\n`;
      text += line;
      end += Buffer.byteLength(line);
      added.push({ event, end, size: line.length });
      this.#tailBytes += line.length;
    }
    this.#write(text, end - this.#bytes);
    this.#tail.push(...added);
    this.#trimTail();
    this.#wake();
    return this.#lastId;
  }

  /** Drops the oldest tail entries beyond the bounds, but never what is not in the file yet. */
  #trimTail(): void {
    while (this.#tail.length > TAIL_EVENTS || (this.#tailBytes > TAIL_BYTES && this.#tail.length > 1)) {
      const oldest = this.#tail[0];
      if (!oldest || oldest.end > this.#flushed) break;
      this.#tail.shift();
      this.#tailBytes -= oldest.size;
    }
  }

  /** No more events will come; readers finish after what is there. */
  end(): void {
    if (this.#endRequested) return;
    this.#endRequested = true;
    // A file still being created is closed once its pending lines are written.
    if (this.#fd !== undefined || this.#failed) this.#close();
  }

  #close(): void {
    if (this.#handle) void this.#handle.close();
    else if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    this.#handle = undefined;
    this.#ended = true;
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

  get readerCount(): number {
    return this.#waiters.size;
  }

  /**
   * A cursor over the events after `afterId`. `next()` returns the next batch (bounded in count
   * and bytes), an empty array when the reader has caught up with a live job, and null once the
   * log has ended and everything was read.
   */
  reader(afterId: number): LogReader {
    return new LogReader(this, afterId);
  }

  /** @internal the tail entries after `afterId`, or undefined when the tail no longer reaches back that far. */
  fromTail(afterId: number, max: number): { events: JobEvent[]; end: number } | undefined {
    const first = this.#tail[0];
    if (!first || first.event.id > afterId + 1) return undefined;
    const start = afterId + 1 - first.event.id;
    const slice = this.#tail.slice(start, start + max);
    const last = slice.at(-1);
    return last ? { events: slice.map((e) => e.event), end: last.end } : { events: [], end: this.#bytes };
  }

  /** @internal byte offset just after event `id`, when the tail still holds it. */
  offsetAfter(id: number): number | undefined {
    if (id === this.#lastId) return this.#bytes;
    const first = this.#tail[0];
    if (!first || id < first.event.id) return undefined;
    return this.#tail[id - first.event.id]?.end;
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

export class LogReader {
  readonly #log: JobLog;
  #afterId: number;
  /** Byte offset in the file of the first event not yet returned, when known. */
  #offset: number | undefined;

  constructor(log: JobLog, afterId: number) {
    this.#log = log;
    this.#afterId = afterId;
    this.#offset = afterId === 0 ? 0 : log.offsetAfter(afterId);
  }

  get afterId(): number {
    return this.#afterId;
  }

  get offset(): number {
    return this.#offset ?? 0;
  }

  async next(maxEvents = 256): Promise<JobEvent[] | null> {
    const ended = this.#log.ended;
    if (this.#afterId >= this.#log.lastId) return ended ? null : [];
    const fromTail = this.#log.fromTail(this.#afterId, maxEvents);
    if (fromTail && fromTail.events.length > 0) {
      this.#afterId = fromTail.events.at(-1)?.id ?? this.#afterId;
      this.#offset = fromTail.end;
      return fromTail.events;
    }
    return this.#readFile(maxEvents);
  }

  /**
   * The file stays open for the reader's life, so a job deleted by retention while someone
   * replays it is still read to its end. Call `close()` when done.
   */
  #handle: FileHandle | undefined;

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  async #readFile(maxEvents: number): Promise<JobEvent[] | null> {
    this.#handle ??= await open(this.#log.file, 'r');
    const handle = this.#handle;
    {
      const events: JobEvent[] = [];
      let position = this.#offset ?? 0;
      let size = READ_CHUNK;
      while (events.length === 0) {
        const buffer = Buffer.allocUnsafe(size);
        const { bytesRead } = await handle.read(buffer, 0, size, position);
        if (bytesRead === 0) break;
        let start = 0;
        while (events.length < maxEvents) {
          const newline = buffer.indexOf(10, start);
          if (newline === -1 || newline >= bytesRead) break;
          const line = buffer.toString('utf8', start, newline);
          start = newline + 1;
          let event: JobEvent;
          try {
            event = JSON.parse(line) as JobEvent;
          } catch {
            continue; // a line torn by a crash
          }
          // Record lines have no id; they are the store's, not the job's output.
          if (event.id > this.#afterId) events.push(event);
        }
        position += start;
        if (start === 0) {
          // No whole line in this chunk: a line longer than the chunk, or a torn end of file.
          if (bytesRead < size || size >= MAX_READ) break;
          size *= 2;
        }
      }
      this.#offset = position;
      const last = events.at(-1);
      if (last) this.#afterId = last.id;
      if (events.length === 0 && this.#log.ended) return null;
      return events;
    }
  }
}
