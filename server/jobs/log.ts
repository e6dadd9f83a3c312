import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Journal, Segment, Span } from './journal.ts';
import type { JobEvent, JobEventType } from './types.ts';

/** How much of the newest output stays in memory for live readers. Older output is read from disk. */
const TAIL_EVENTS = 512;
const TAIL_BYTES = 256 * 1024;
/**
 * Bytes read per step when a reader is behind the memory tail. A stored output line holds one
 * chunk of the script's output (up to 64 KiB of it, a little more as JSON), so a step of 256 KiB
 * takes a few whole lines: one read, without the doubling and re-reading a smaller step needs.
 */
const READ_CHUNK = 256 * 1024;
const MAX_READ = 16 * 1024 * 1024;

/** One stored line in the in-memory tail: one event, or a batch of output lines. */
interface TailEntry {
  events: JobEvent[];
  /** Byte offsets of the stored line and of the one after it. */
  start: number;
  end: number;
  size: number;
}

/**
 * Consecutive output lines of one stream from one chunk are stored as one JSON line,
 * `{"id":<first>,"event":"stdout","lines":[…],"at":…}`, holding the events <first>, <first>+1, …
 * (one object per line made storage and read-back the cost of streaming). Readers see events.
 */
function isBatchable(event: JobEventType): boolean {
  return event === 'stdout' || event === 'stderr';
}

/** The events of one stored line (a single event or a batch). Throws on a torn line. */
export function eventsOfLine(line: string): JobEvent[] {
  const parsed = JSON.parse(line) as JobEvent & { lines?: string[] };
  if (!Array.isArray(parsed.lines)) return [parsed];
  const events: JobEvent[] = new Array(parsed.lines.length);
  for (let i = 0; i < parsed.lines.length; i++) events[i] = { id: parsed.id + i, event: parsed.event, data: parsed.lines[i] ?? '', at: parsed.at };
  return events;
}

/** A short write means the disk is full: the caller stops writing there. */
function checkWritten(written: number, expected: number): void {
  if (written !== expected) throw new Error(`short write (${written} of ${expected} bytes): the disk is full`);
}

/** Where a job's lines go: frames in the shared journal, or a file of its own once it is large. */
export interface LogPlace {
  journal: Journal;
  jobId: string;
  /** The job's own file: where it moves past `moveAt` bytes (and where it is read from after). */
  file: string;
  /** Bytes after which the job moves to its own file. */
  moveAt: number;
  /** Hears once when a write fails (the job still runs; its output then lives only in memory, bounded). */
  onError: (err: Error) => void;
  /** Hears when the log ends in the journal (the store keeps its spans to read it later). */
  onEnd?: (log: JobLog) => void;
}

/**
 * A job's output: JSON lines (its record lines, and one event each with its id), appended
 * synchronously, plus a bounded in-memory tail for live readers. Readers pull at their own pace
 * (see `reader`), so a slow reader holds at most one read chunk, never the job's output.
 *
 * The lines go to the shared journal as frames (see journal.ts) — a few microseconds each, where
 * a file per job costs an inode, an open, a close and an unlink. A job whose output passes
 * `moveAt` bytes moves to a file of its own: its bytes so far are copied there (under a temp
 * name, renamed when complete, so a crash leaves either the journal or the file whole) and it
 * appends there from then on. Either way the job's bytes form one stream, so readers' offsets
 * stay valid across the move.
 */
export class JobLog {
  readonly #place: LogPlace | undefined;
  /** The job's own file (read from when `#spans` is undefined). */
  readonly file: string;
  /** Journal mode: the job's frames. Undefined once the job has its own file. */
  #spans: Span[] | undefined;
  #fd: number | undefined;
  #lastId: number;
  /** Bytes appended (the stream's size). */
  #bytes: number;
  /** Bytes actually stored (less than #bytes only after a write error). */
  #flushed: number;
  #ended: boolean;
  #failed = false;
  readonly #tail: TailEntry[] = [];
  #tailBytes = 0;
  #tailEvents = 0;
  readonly #waiters = new Set<() => void>();

  private constructor(file: string, place: LogPlace | undefined, spans: Span[] | undefined, fd: number | undefined, lastId: number, bytes: number, ended: boolean) {
    this.file = file;
    this.#place = place;
    this.#spans = spans;
    this.#fd = fd;
    this.#lastId = lastId;
    this.#bytes = bytes;
    this.#flushed = bytes;
    this.#ended = ended;
  }

  /** A new log for a job being accepted, starting with its record (stored before this returns). */
  static create(place: LogPlace, record: object, events: ReadonlyArray<{ event: JobEventType; data: string }> = []): JobLog {
    const log = new JobLog(place.file, place, [], undefined, 0, 0, false);
    log.append(events, record);
    return log;
  }

  /**
   * A log kept in the journal: `ended` for reading a finished job, or open for appending (a job
   * a restart found interrupted).
   */
  static fromJournal(place: LogPlace, spans: Span[], lastId: number, bytes: number, ended: boolean): JobLog {
    return new JobLog(place.file, ended ? undefined : place, spans, undefined, lastId, bytes, ended);
  }

  /** A write failed: from then on, output lives only in the memory tail. */
  get failed(): boolean {
    return this.#failed;
  }

  /** @internal the id of the oldest event still in the memory tail. */
  get firstTailId(): number | undefined {
    return this.#tail[0]?.events[0]?.id;
  }

  get journalSpans(): readonly Span[] | undefined {
    return this.#spans;
  }

  get bytes(): number {
    return this.#bytes;
  }

  #write(text: string, bytes: number): void {
    const vstart = this.#bytes;
    this.#bytes += bytes;
    if (this.#failed) {
      this.#flushed = this.#bytes;
      return;
    }
    try {
      if (this.#fd !== undefined) checkWritten(writeSync(this.#fd, text), bytes);
      else if (this.#spans && this.#place) {
        this.#spans.push(this.#place.journal.append(this.#place.jobId, text, bytes, vstart));
        if (this.#bytes > this.#place.moveAt) this.#moveToOwnFile();
      }
    } catch (err) {
      // Disk full or an I/O error: the job goes on, its output from here lives only in the
      // (bounded) memory tail; the server must not fall over because the disk can't grow.
      this.#place?.onError(err as Error);
      this.#failed = true;
    }
    this.#flushed = this.#bytes;
  }

  /** Copies the job's frames into its own file and appends there from now on. */
  #moveToOwnFile(): void {
    const place = this.#place;
    const spans = this.#spans;
    if (!place || !spans) return;
    const temp = `${this.file}.tmp`;
    let fd: number | undefined;
    try {
      fd = openSync(temp, 'w', 0o600);
      for (const span of spans) {
        const buffer = Buffer.allocUnsafe(span.bytes);
        let got = 0;
        while (got < span.bytes) {
          const n = readSync(span.segment.fd, buffer, got, span.bytes - got, span.start + got);
          if (n === 0) throw new Error(`journal segment ${span.segment.file} ended early`);
          got += n;
        }
        checkWritten(writeSync(fd, buffer), buffer.length);
      }
      // On disk before the journal's copy may go: a power loss must not leave a short file.
      fsyncSync(fd);
      renameSync(temp, this.file);
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      try {
        unlinkSync(temp);
      } catch {
        // never created or already gone
      }
      // It stays in the journal (which has all of it); no second try.
      place.moveAt = Number.POSITIVE_INFINITY;
      place.onError(err as Error);
      return;
    }
    this.#fd = fd;
    this.#spans = undefined;
    place.journal.release(place.jobId, spans);
  }

  /** The log of a job with a file of its own (finished, or interrupted by a restart: `reopen` lets it append the end). */
  static async load(file: string, options: { reopen: boolean }): Promise<JobLog> {
    let lastId = 0;
    try {
      const scan = new JobLog(file, undefined, undefined, undefined, Number.MAX_SAFE_INTEGER, 0, true);
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
    if (!options.reopen) return new JobLog(file, undefined, undefined, undefined, lastId, 0, true);
    const fd = openSync(file, 'a', 0o600);
    return new JobLog(file, undefined, undefined, fd, lastId, fstatSync(fd).size, false);
  }

  get lastId(): number {
    return this.#lastId;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Records the job's record among its lines (a line without an event id, which readers skip):
   * appends only, because creating and renaming files is what costs most on a busy disk. The
   * last record line (or the `done` event) is the job's state.
   */
  writeRecord(record: object): void {
    this.append([], record);
  }

  /**
   * Appends events, after the job's record when given (one disk write for all), and wakes live
   * readers. Returns the last id.
   */
  append(items: ReadonlyArray<{ event: JobEventType; data: string }>, record?: object): number {
    if (this.#ended || (items.length === 0 && record === undefined)) return this.#lastId;
    const at = Date.now();
    let text = record === undefined ? '' : `${JSON.stringify({ record })}\n`;
    let end = this.#bytes + (text === '' ? 0 : Buffer.byteLength(text));
    const added: TailEntry[] = [];
    for (let i = 0; i < items.length; ) {
      const first = items[i] as { event: JobEventType; data: string };
      let j = i + 1;
      if (isBatchable(first.event)) while (j < items.length && items[j]?.event === first.event) j++;
      const events: JobEvent[] = [];
      for (let k = i; k < j; k++) events.push({ id: ++this.#lastId, event: first.event, data: (items[k] as { data: string }).data, at });
      const head = events[0] as JobEvent;
      const line =
        events.length === 1
          ? `${JSON.stringify(head)}\n`
          : `{"id":${head.id},"event":"${head.event}","lines":${JSON.stringify(events.map((e) => e.data))},"at":${at}}\n`;
      text += line;
      const start = end;
      end += Buffer.byteLength(line);
      added.push({ events, start, end, size: line.length });
      this.#tailBytes += line.length;
      this.#tailEvents += events.length;
      i = j;
    }
    this.#write(text, end - this.#bytes);
    if (added.length === 0) return this.#lastId;
    for (const entry of added) this.#tail.push(entry);
    this.#trimTail();
    this.#wake();
    return this.#lastId;
  }

  /** Drops the oldest tail entries beyond the bounds, but never what is not stored yet. */
  #trimTail(): void {
    while (this.#tailEvents > TAIL_EVENTS || (this.#tailBytes > TAIL_BYTES && this.#tail.length > 1)) {
      const oldest = this.#tail[0];
      if (!oldest || oldest.end > this.#flushed || this.#tail.length === 1) break;
      this.#tail.shift();
      this.#tailBytes -= oldest.size;
      this.#tailEvents -= oldest.events.length;
    }
  }

  /** No more events will come; readers finish after what is there. */
  end(): void {
    if (this.#ended) return;
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    this.#ended = true;
    this.#place?.onEnd?.(this);
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

  /** The tail entry holding event `id`, by binary search (entries are in id order). */
  #tailIndexOf(id: number): number {
    let low = 0;
    let high = this.#tail.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const entry = this.#tail[mid] as TailEntry;
      const first = (entry.events[0] as JobEvent).id;
      if (id < first) high = mid - 1;
      else if (id >= first + entry.events.length) low = mid + 1;
      else return mid;
    }
    return -1;
  }

  /**
   * @internal the tail's events after `afterId` (at most about `max`), and the byte offset to go on
   * reading the file from; undefined when the tail no longer reaches back that far.
   */
  fromTail(afterId: number, max: number): { events: JobEvent[]; end: number } | undefined {
    if (afterId >= this.#lastId) return { events: [], end: this.#bytes };
    let index = this.#tailIndexOf(afterId + 1);
    if (index === -1) return undefined;
    const events: JobEvent[] = [];
    let end = this.#bytes;
    for (; index < this.#tail.length && events.length < max; index++) {
      const entry = this.#tail[index] as TailEntry;
      for (const event of entry.events) if (event.id > afterId) events.push(event);
      end = entry.end;
    }
    return { events, end };
  }

  /** @internal byte offset to read the file from to find the events after `id`, when the tail still holds it. */
  offsetAfter(id: number): number | undefined {
    if (id === this.#lastId) return this.#bytes;
    const index = this.#tailIndexOf(id);
    const entry = this.#tail[index];
    if (!entry) return undefined;
    // Inside a batch: from the batch's start (the reader skips what it already had).
    return (entry.events.at(-1) as JobEvent).id === id ? entry.end : entry.start;
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

  async next(maxEvents = 256): Promise<JobEvent[] | null> {
    const ended = this.#log.ended;
    if (this.#afterId >= this.#log.lastId) return ended ? null : [];
    const fromTail = this.#log.fromTail(this.#afterId, maxEvents);
    if (fromTail && fromTail.events.length > 0) {
      this.#afterId = fromTail.events.at(-1)?.id ?? this.#afterId;
      this.#offset = fromTail.end;
      return fromTail.events;
    }
    const events = await this.#readFile(maxEvents);
    if (events !== null && events.length > 0) return events;
    // After a failed write, what was not stored can't be read back: go on with what the memory
    // tail still holds (instead of waiting for bytes that will never come).
    const first = this.#log.failed ? this.#log.firstTailId : undefined;
    if (first !== undefined && first > this.#afterId + 1) {
      this.#afterId = first - 1;
      this.#offset = undefined;
      return this.next(maxEvents);
    }
    return events;
  }

  readonly #source = new StreamSource();

  async close(): Promise<void> {
    await this.#source.close();
  }

  async #readFile(maxEvents: number): Promise<JobEvent[] | null> {
    const events: JobEvent[] = [];
    let position = this.#offset ?? 0;
    let size = READ_CHUNK;
    while (events.length === 0) {
      const buffer = Buffer.allocUnsafe(size);
      const bytesRead = await this.#source.read(this.#log, buffer, size, position);
      if (bytesRead === 0) break;
      let start = 0;
      while (events.length < maxEvents) {
        const newline = buffer.indexOf(10, start);
        if (newline === -1 || newline >= bytesRead) break;
        const line = buffer.toString('utf8', start, newline);
        start = newline + 1;
        // Record lines have no id; they are the store's, not the job's output.
        if (line.startsWith('{"record":')) continue;
        let stored: JobEvent[];
        try {
          stored = eventsOfLine(line);
        } catch {
          continue; // a line torn by a crash
        }
        for (const event of stored) if (event.id > this.#afterId) events.push(event);
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

/**
 * A job's byte stream for one reader: its journal spans while it has them, then its own file
 * (same offsets: the move copies the spans). What the reader has started on stays readable to
 * its end even if retention deletes the job meanwhile: segments are pinned, the file stays open.
 */
class StreamSource {
  #spans: readonly Span[] | undefined;
  readonly #pinned = new Set<Segment>();
  #handle: FileHandle | undefined;
  #started = false;

  async read(log: JobLog, buffer: Buffer, length: number, position: number): Promise<number> {
    if (!this.#started) {
      this.#started = true;
      this.#spans = log.journalSpans;
      for (const span of this.#spans ?? []) this.#pin(span.segment);
    }
    const spans = this.#spans;
    // After a move the job's own file holds all of it from byte 0: read only there (the journal's
    // copy may already be gone).
    if (spans && log.journalSpans === spans) {
      const span = spanAt(spans, position);
      if (!span) return 0; // nothing more yet
      if (!this.#pin(span.segment)) throw new Error('the job was deleted (retention) while it was being read');
      const length_ = Math.min(length, span.vstart + span.bytes - position);
      return span.segment.read(buffer, 0, length_, span.start + (position - span.vstart));
    }
    this.#handle ??= await open(log.file, 'r');
    return (await this.#handle.read(buffer, 0, length, position)).bytesRead;
  }

  /** Keeps the segment's fd open for this reader; false when it is already closed (deleted). */
  #pin(segment: Segment): boolean {
    if (this.#pinned.has(segment)) return true;
    if (segment.retired) return false;
    this.#pinned.add(segment);
    segment.pin();
    return true;
  }

  async close(): Promise<void> {
    for (const segment of this.#pinned) segment.unpin();
    this.#pinned.clear();
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }
}

/** The span holding byte `position` of the stream (spans are in stream order, back to back). */
function spanAt(spans: readonly Span[], position: number): Span | undefined {
  let low = 0;
  let high = spans.length - 1;
  while (low <= high) {
    const mid = (low + high) >>> 1;
    const span = spans[mid];
    if (!span) break;
    if (position < span.vstart) high = mid - 1;
    else if (position >= span.vstart + span.bytes) low = mid + 1;
    else return span;
  }
  return undefined;
}
