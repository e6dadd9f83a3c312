import { closeSync, mkdirSync, openSync, readdirSync, readSync, fstatSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { JobLog } from './log.ts';
import type { JobRecord } from './types.ts';

const ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const FILE = /^([0-9A-HJKMNP-TV-Z]{26})\.ndjson$/;
const TAIL = 64 * 1024;

/**
 * Jobs on disk: one file per job, `<dataDir>/jobs/<id>.ndjson`, append-only JSON lines: the
 * job's record (lines `{"record":…}`, the last one wins) and its output events (lines with an
 * `id`), the last of which is `done` carrying the final record. Appends to one open file are the
 * cheapest durable write there is (no directory, temp file or rename per update); a crash loses
 * at most the line being written; the files read with cat and jq.
 */
export class JobStore {
  readonly root: string;
  readonly #log: Logger;

  constructor(options: { dataDir: string; log: Logger }) {
    this.root = join(options.dataDir, 'jobs');
    this.#log = options.log;
  }

  /** Creates the directory and returns every stored record (newest first). */
  loadAll(): JobRecord[] {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const records: JobRecord[] = [];
    const ids = readdirSync(this.root)
      .map((name) => FILE.exec(name)?.[1])
      .filter((id): id is string => id !== undefined)
      .sort()
      .reverse();
    for (const id of ids) {
      const record = this.#readRecord(id);
      if (record) records.push(record);
      else this.#log.warn({ jobId: id, file: this.logFile(id) }, 'job file has no readable record; skipped (delete it if it is not needed)');
    }
    return records;
  }

  /** A new job's file, starting with its record. */
  create(record: JobRecord): JobLog {
    return JobLog.create(this.logFile(record.id), record, (err) => {
      this.#log.error({ jobId: record.id, err: err.message }, 'cannot write the job file; the job runs but its output is not kept. Check free space and permissions of ARMHOOK_DATA_DIR');
    });
  }

  logFile(id: string): string {
    return join(this.root, `${id}.ndjson`);
  }

  /** Deletes a job's file (in the background: nothing waits on it). */
  remove(id: string): void {
    if (!ID.test(id)) return;
    unlink(this.logFile(id)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return;
      this.#log.warn({ jobId: id, err: (err as Error).message }, 'could not delete an old job file; check the permissions of the data directory');
    });
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
      for (let end = size; end > 0; ) {
        const start = Math.max(0, end - TAIL);
        const buffer = Buffer.allocUnsafe(end - start);
        readSync(fd, buffer, 0, buffer.length, start);
        const lines = buffer.toString('utf8').split('\n');
        // The first piece may be a partial line unless we read from the start of the file.
        for (let i = lines.length - 1; i >= (start === 0 ? 0 : 1); i--) {
          const record = recordOf(lines[i] ?? '');
          if (record) return record;
        }
        end = start === 0 ? 0 : start + Buffer.byteLength(lines[0] ?? '');
        if (end === start + buffer.length) break;
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
