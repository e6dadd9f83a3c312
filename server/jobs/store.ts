import { closeSync, mkdirSync, openSync, readdirSync, readSync, fstatSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Journal, type Span } from './journal.ts';
import { eventsOfLine, JobLog, type LogPlace } from './log.ts';
import type { JobEventType, JobRecord } from './types.ts';

const ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const FILE = /^([0-9A-HJKMNP-TV-Z]{26})\.ndjson$/;
const TAIL = 64 * 1024;

/** A job past this many bytes moves from the journal to a file of its own. */
export const MOVE_AT_BYTES = 256 * 1024;

/** A job kept in the journal: where its frames are, and what a reader needs to know of it. */
interface JournaledJob {
  spans: Span[];
  lastId: number;
  bytes: number;
}

/**
 * Jobs on disk, under `<dataDir>/jobs/`. Every job starts in the shared journal
 * (`journal-<n>.ndjson`, see journal.ts); one whose output passes MOVE_AT_BYTES moves to a file
 * of its own, `<id>.ndjson`. Either way a job's bytes are append-only JSON lines: its record
 * (lines `{"record":…}`, the last one wins) and its output events (lines with an `id`), the last
 * of which is `done` carrying the final record. A crash loses at most the line being written;
 * everything reads with cat and jq.
 */
export class JobStore {
  readonly root: string;
  readonly #log: Logger;
  readonly #journal: Journal;
  readonly #moveAt: number;
  /** Jobs whose lines are in the journal, as of when they ended (or were found at start-up). */
  readonly #journaled = new Map<string, JournaledJob>();

  constructor(options: { dataDir: string; log: Logger; segmentBytes?: number; moveAt?: number }) {
    this.root = join(options.dataDir, 'jobs');
    this.#log = options.log;
    this.#journal = new Journal(this.root, options.segmentBytes ? { segmentBytes: options.segmentBytes } : {});
    this.#moveAt = options.moveAt ?? MOVE_AT_BYTES;
  }

  /** Creates the directory and returns every stored record (newest first). */
  loadAll(): JobRecord[] {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const found = new Map<string, JobRecord>();
    const names = readdirSync(this.root);
    for (const name of names) {
      // A move to a job's own file that a crash interrupted: the journal still has all of it.
      if (name.endsWith('.ndjson.tmp')) rmSync(join(this.root, name), { force: true });
    }
    const scanned = new Map<string, JournaledJob & { record: JobRecord | undefined }>();
    for (const [id, job] of this.#journal.scan()) {
      if (!ID.test(id)) continue;
      scanned.set(id, { ...job, ...this.#readJournaled(job.spans) });
    }
    for (const id of names.map((name) => FILE.exec(name)?.[1]).filter((x): x is string => x !== undefined)) {
      const record = this.#readRecord(id);
      const journaled = scanned.get(id);
      if (journaled && record) {
        // Moved to its own file: the file has everything; its frames in the journal are left over.
        this.#journal.release(id, journaled.spans);
        scanned.delete(id);
      }
      if (record) found.set(id, record);
      else if (!journaled) this.#log.warn({ jobId: id, file: this.logFile(id) }, 'job file has no readable record; skipped (delete it if it is not needed)');
    }
    for (const [id, job] of scanned) {
      if (!job.record) {
        this.#log.warn({ jobId: id, dir: this.root }, 'a job in the journal has no readable record; skipped');
        this.#journal.release(id, job.spans);
        continue;
      }
      this.#journaled.set(id, { spans: job.spans, lastId: job.lastId, bytes: job.bytes });
      found.set(id, job.record);
    }
    return [...found.keys()]
      .sort()
      .reverse()
      .map((id) => found.get(id) as JobRecord);
  }

  /** A new job's log, starting with its record and first events (on disk when this returns). */
  create(record: JobRecord, events: ReadonlyArray<{ event: JobEventType; data: string }> = []): JobLog {
    return JobLog.create(this.#place(record.id), record, events);
  }

  /** A finished job's log, for reading (a job with no stored bytes reads as empty). */
  async openLog(id: string): Promise<JobLog> {
    const journaled = this.#journaled.get(id);
    if (journaled) return JobLog.fromJournal(this.#place(id), journaled.spans, journaled.lastId, journaled.bytes, true);
    return JobLog.load(this.logFile(id), { reopen: false });
  }

  /** The log of a job a restart found unfinished, open for appending its end. */
  async reopen(id: string): Promise<JobLog> {
    const journaled = this.#journaled.get(id);
    if (journaled) return JobLog.fromJournal(this.#place(id), [...journaled.spans], journaled.lastId, journaled.bytes, false);
    return JobLog.load(this.logFile(id), { reopen: true });
  }

  #place(id: string): LogPlace {
    return {
      journal: this.#journal,
      jobId: id,
      file: this.logFile(id),
      moveAt: this.#moveAt,
      onError: (err) => {
        this.#log.error({ jobId: id, err: err.message }, 'cannot write job data; the job runs but its output is not kept. Check free space and permissions of ARMHOOK_DATA_DIR');
      },
      onEnd: (log) => {
        const spans = log.journalSpans;
        if (spans) this.#journaled.set(id, { spans: [...spans], lastId: log.lastId, bytes: log.bytes });
        else this.#journaled.delete(id); // it moved to its own file on the way
      },
    };
  }

  logFile(id: string): string {
    return join(this.root, `${id}.ndjson`);
  }

  /** Deletes a job: its frames (a segment goes once nothing kept is in it), or its own file. */
  remove(id: string): void {
    if (!ID.test(id)) return;
    try {
      this.#journal.forget(id);
    } catch (err) {
      this.#log.warn({ jobId: id, err: (err as Error).message }, 'could not mark an old job deleted in the journal; it may reappear after a restart. Check free space of ARMHOOK_DATA_DIR');
    }
    const journaled = this.#journaled.get(id);
    if (journaled) {
      this.#journaled.delete(id);
      this.#journal.release(id, journaled.spans);
      return;
    }
    // Only jobs that outgrew the journal have a file: rare enough to delete in place.
    try {
      unlinkSync(this.logFile(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.#log.warn({ jobId: id, err: (err as Error).message }, 'could not delete an old job file; check the permissions of the data directory');
    }
  }

  /** Closes the journal (readers still reading keep what they pinned). */
  close(): void {
    this.#journal.close();
  }

  /** A journaled job's latest record and last event id, from its frames. */
  #readJournaled(spans: readonly Span[]): { record: JobRecord | undefined; lastId: number } {
    let record: JobRecord | undefined;
    let lastId = 0;
    for (const span of spans) {
      const buffer = Buffer.allocUnsafe(span.bytes);
      readSync(span.segment.fd, buffer, 0, span.bytes, span.start);
      for (const line of buffer.toString('utf8').split('\n')) {
        const id = /^\{"id":(\d+),/.exec(line)?.[1];
        if (id !== undefined) {
          try {
            lastId = Math.max(lastId, eventsOfLine(line).at(-1)?.id ?? 0);
          } catch {
            // torn by a crash
          }
        }
        record = recordOf(line) ?? record;
      }
    }
    return { record, lastId };
  }

  /** The job's latest record: the last record line or `done` event, read from the end of the file. */
  #readRecord(id: string): JobRecord | undefined {
    let fd: number;
    try {
      fd = openSync(this.logFile(id), 'r');
    } catch {
      return undefined;
    }
    try {
      const size = fstatSync(fd).size;
      // Usually the last line is the `done` event; after a crash the last record line may be further back.
      // Windows read backwards; a line longer than the window (output batches can be) grows it.
      let window = TAIL;
      for (let end = size; end > 0; ) {
        const start = Math.max(0, end - window);
        const buffer = Buffer.allocUnsafe(end - start);
        readSync(fd, buffer, 0, buffer.length, start);
        // Whole lines, newest first: the piece after each newline up to the next one (the first
        // piece of the window is a whole line only when the window starts the file).
        let stop = buffer.length;
        for (let i = buffer.length - 1; i >= 0; i--) {
          if (buffer[i] !== 10) continue;
          const record = recordOf(buffer.toString('utf8', i + 1, stop));
          if (record) return record;
          stop = i;
        }
        if (start === 0) return recordOf(buffer.toString('utf8', 0, stop));
        if (stop === buffer.length) window *= 2; // no line end in the window: read further back
        else end = start + stop;
      }
      return undefined;
    } finally {
      closeSync(fd);
    }
  }
}

function recordOf(line: string): JobRecord | undefined {
  if (!line.startsWith('{"record":') && !line.includes('"event":"done"')) return undefined;
  try {
    const parsed = JSON.parse(line) as { record?: JobRecord; event?: string; data?: string };
    if (parsed.record) return parsed.record;
    if (parsed.event === 'done' && parsed.data) {
      const { jobId: _jobId, ...record } = JSON.parse(parsed.data) as JobRecord & { jobId: string };
      return record;
    }
  } catch {
    // a line torn by a crash
  }
  return undefined;
}

export function isJobId(value: string): boolean {
  return ID.test(value);
}
