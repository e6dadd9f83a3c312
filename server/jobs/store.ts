import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { JobLog } from './log.ts';
import type { JobRecord } from './types.ts';

const ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/**
 * Jobs on disk: `<dataDir>/jobs/<id>/record.json` (replaced atomically on every change) and
 * `<dataDir>/jobs/<id>/events.ndjson` (the output, see JobLog). Plain files: nothing to build or
 * migrate, readable with cat and jq, and a crash loses at most the line being written.
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
    for (const id of readdirSync(this.root).filter((name) => ID.test(name)).sort().reverse()) {
      try {
        records.push(JSON.parse(readFileSync(join(this.root, id, 'record.json'), 'utf8')) as JobRecord);
      } catch (err) {
        this.#log.warn({ jobId: id, err: (err as Error).message }, 'job record unreadable; skipped (delete its directory if it is not needed)');
      }
    }
    return records;
  }

  /** A new job's directory, record and empty log. */
  create(record: JobRecord): JobLog {
    mkdirSync(join(this.root, record.id), { mode: 0o700 });
    this.save(record);
    return JobLog.create(this.logFile(record.id));
  }

  save(record: JobRecord): void {
    const file = join(this.root, record.id, 'record.json');
    writeFileSync(`${file}.tmp`, JSON.stringify(record), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  logFile(id: string): string {
    return join(this.root, id, 'events.ndjson');
  }

  remove(id: string): void {
    if (!ID.test(id)) return;
    rmSync(join(this.root, id), { recursive: true, force: true });
  }
}

export function isJobId(value: string): boolean {
  return ID.test(value);
}
