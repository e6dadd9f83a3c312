import { closeSync, fstatSync, openSync, read, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The shared journal: where every job's record and output lines go first, as frames appended to
 * one open file (a segment) — a header line `{"job":"<id>","bytes":N}` and then N bytes of that
 * job's own lines, exactly as they would read in a file of its own. A job that grows past a size
 * moves to a file of its own (see JobLog); most jobs never do.
 *
 * Why: a file per job costs an inode allocation, an open, a close and later an unlink — 0.2 to
 * 1 ms of CPU per job on ext4 under churn (measured: bench/micro/job-files.ts), the largest cost of
 * a short job — where appending a frame to an open file costs a few microseconds. Segments roll
 * over at a size and are deleted when no kept job has a frame in them any more.
 */

const SEGMENT = /^journal-(\d{12})\.ndjson$/;
// Frames: `{"job":"<id>","bytes":N}` + N bytes of the job's lines; `{"job":"<id>","bytes":0,"deleted":true}`
// marks a job deleted.
/** A segment rolls over past this size (a frame is never split across segments). */
export const SEGMENT_BYTES = 16 * 1024 * 1024;

/** A run of one job's bytes in a segment: `bytes` bytes at `start`, its bytes `vstart`… of the job. */
export interface Span {
  segment: Segment;
  start: number;
  bytes: number;
  /** Offset of this span's first byte in the job's own stream (all its spans back to back). */
  vstart: number;
}

export class Segment {
  readonly file: string;
  readonly fd: number;
  size: number;
  /** Jobs with frames here that are still kept. */
  readonly jobs = new Set<string>();
  /** Readers in the middle of reading from it: the fd stays open for them after an unlink. */
  readers = 0;
  /** Deleted, or the journal closed: the fd is closed as soon as no reader uses it. */
  retired = false;

  constructor(file: string, fd: number, size: number) {
    this.file = file;
    this.fd = fd;
    this.size = size;
  }

  /** A reader starts using this segment: its fd stays open until `unpin`, even if it is deleted. */
  pin(): void {
    this.readers++;
  }

  unpin(): void {
    this.readers--;
    if (this.retired && this.readers === 0) closeSync(this.fd);
  }

  /** Reads up to `length` bytes at `position` off the event loop. */
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    return new Promise((resolve, reject) => {
      read(this.fd, buffer, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
    });
  }
}

/** What a segment scan found for one job: its spans in order and its size (its bytes back to back). */
export interface ScannedJob {
  spans: Span[];
  bytes: number;
}

export class Journal {
  readonly #dir: string;
  readonly #segmentBytes: number;
  #current: Segment | undefined;
  #seq = 0;
  readonly #segments = new Map<string, Segment>();

  constructor(dir: string, options: { segmentBytes?: number } = {}) {
    this.#dir = dir;
    this.#segmentBytes = options.segmentBytes ?? SEGMENT_BYTES;
  }

  /**
   * Reads every segment (oldest first) and returns each job's spans. A frame torn by a crash (the
   * last one of a segment) is ignored. New frames always go to a new segment.
   */
  scan(): Map<string, ScannedJob> {
    const jobs = new Map<string, ScannedJob>();
    const names = readdirSync(this.#dir).filter((n) => SEGMENT.test(n)).sort();
    for (const name of names) {
      this.#seq = Math.max(this.#seq, Number(SEGMENT.exec(name)?.[1]));
      const file = join(this.#dir, name);
      const fd = openSync(file, 'r');
      const content = readFileSync(fd);
      const segment = new Segment(file, fd, content.length);
      this.#segments.set(file, segment);
      let at = 0;
      while (at < content.length) {
        const newline = content.indexOf(10, at);
        if (newline === -1) break;
        let header: { job?: unknown; bytes?: unknown; deleted?: unknown };
        try {
          header = JSON.parse(content.toString('utf8', at, newline)) as typeof header;
        } catch {
          break; // torn
        }
        const start = newline + 1;
        if (typeof header.job !== 'string' || typeof header.bytes !== 'number' || start + header.bytes > content.length) break;
        if (header.deleted === true) {
          // Deleted by retention after these frames were written: it stays deleted.
          for (const span of jobs.get(header.job)?.spans ?? []) span.segment.jobs.delete(header.job);
          jobs.delete(header.job);
          at = start;
          continue;
        }
        let job = jobs.get(header.job);
        if (!job) jobs.set(header.job, (job = { spans: [], bytes: 0 }));
        job.spans.push({ segment, start, bytes: header.bytes, vstart: job.bytes });
        job.bytes += header.bytes;
        segment.jobs.add(header.job);
        at = start + header.bytes;
      }
    }
    this.#reclaim();
    return jobs;
  }

  /** Appends one frame of a job's lines (synchronously: one write) and returns where it went. */
  append(jobId: string, text: string, bytes: number, vstart: number): Span {
    const { segment, end } = this.#appendFrame(`{"job":"${jobId}","bytes":${bytes}}\n`, text, bytes);
    segment.jobs.add(jobId);
    return { segment, start: end - bytes, bytes, vstart };
  }

  /** The job's frames are no longer needed (deleted by retention, or moved to its own file). */
  release(jobId: string, spans: readonly Span[]): void {
    let emptied = false;
    for (const span of spans) {
      if (span.segment.jobs.delete(jobId) && span.segment.jobs.size === 0) emptied = true;
    }
    if (emptied) this.#reclaim();
  }

  /**
   * Marks a job deleted (a frame with no bytes): its frames may outlive it in a segment that
   * still holds kept jobs, and a restart must not bring it back.
   */
  forget(jobId: string): void {
    this.#appendFrame(`{"job":"${jobId}","bytes":0,"deleted":true}\n`, '', 0);
  }

  /** One write of a frame's header and body to the current segment (rolled over when full). */
  #appendFrame(header: string, body: string, bodyBytes: number): { segment: Segment; end: number } {
    let segment = this.#current;
    if (!segment || segment.size >= this.#segmentBytes) segment = this.#roll();
    const expected = header.length + bodyBytes; // the header is ASCII
    const written = writeSync(segment.fd, header + body);
    if (written !== expected) {
      // A short write (disk full): the frame is torn, so nothing more may follow it in this segment.
      segment.size = Number.MAX_SAFE_INTEGER;
      throw new Error(`short write to ${segment.file} (${written} of ${expected} bytes)`);
    }
    segment.size += expected;
    return { segment, end: segment.size };
  }

  close(): void {
    for (const segment of this.#segments.values()) {
      segment.retired = true;
      if (segment.readers === 0) closeSync(segment.fd);
    }
    this.#segments.clear();
    this.#current = undefined;
  }

  #roll(): Segment {
    const previous = this.#current;
    const file = join(this.#dir, `journal-${String(++this.#seq).padStart(12, '0')}.ndjson`);
    const fd = openSync(file, 'wx+', 0o600);
    const segment = new Segment(file, fd, fstatSync(fd).size);
    this.#segments.set(file, segment);
    this.#current = segment;
    if (previous && previous.jobs.size === 0) this.#reclaim();
    return segment;
  }

  /**
   * Deletes segments with nothing kept in them, oldest first and only from the oldest on: a
   * deletion mark (see `forget`) must outlive the frames it cancels, which are older.
   */
  #reclaim(): void {
    for (const segment of this.#segments.values()) {
      if (segment === this.#current || segment.jobs.size > 0) return;
      this.#unlink(segment);
    }
  }

  #unlink(segment: Segment): void {
    if (segment.retired) return;
    segment.retired = true;
    this.#segments.delete(segment.file);
    try {
      unlinkSync(segment.file);
    } catch {
      // already gone
    }
    if (segment.readers === 0) closeSync(segment.fd);
  }
}
