import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import {
  IDEMPOTENCY_WINDOW_MS,
  StorageFullError,
  type IdempotencyClaim,
  type JobFilter,
  type JobPage,
  type JobStore,
  type RetentionPolicy,
} from './job-store.ts';
import { Checkpointer } from './checkpointer.ts';
import { FINAL_STATUSES, type JobEvent, type JobEventType, type JobRecord } from './types.ts';

export const DATABASE_FILE = 'armhook.db';

/**
 * The schema, one step per version (PRAGMA user_version counts the steps applied). A new version
 * appends a step; steps never change once released.
 */
const MIGRATIONS = [
  `CREATE TABLE jobs (
     seq INTEGER PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     hook TEXT NOT NULL,
     status TEXT NOT NULL,
     caller TEXT NOT NULL,
     ended_at TEXT,
     bytes INTEGER NOT NULL DEFAULT 0,
     record TEXT NOT NULL
   );
   CREATE INDEX jobs_by_hook ON jobs (hook, id);
   CREATE INDEX jobs_by_status ON jobs (status, id);
   CREATE INDEX jobs_by_caller ON jobs (caller, id);
   CREATE INDEX jobs_by_end ON jobs (ended_at, seq) WHERE ended_at IS NOT NULL;
   -- One row holds one event, or a run of stdout (or stderr) lines of one chunk joined by LF
   -- (lines never contain one): events last-count+1 … last. Rows of 64 KiB read back in batches.
   CREATE TABLE events (
     job INTEGER NOT NULL,
     last INTEGER NOT NULL,
     count INTEGER NOT NULL,
     type TEXT NOT NULL,
     at INTEGER NOT NULL,
     data TEXT NOT NULL
   );
   CREATE UNIQUE INDEX events_by_job ON events (job, last);`,
  // Idempotency-Key (or a signed sender's delivery id) → the job it started, per caller. A key
  // whose job retention deleted finds nothing (the join); keys older than a day are deleted.
  `CREATE TABLE idempotency_keys (
     caller TEXT NOT NULL,
     key TEXT NOT NULL,
     job INTEGER NOT NULL,
     fingerprint TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (caller, key)
   ) WITHOUT ROWID;
   CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_at);`,
  // A job's keys are deleted with it: a job's seq can be given again to a later job (the highest
  // seq is reused once deleted), and a key left behind would then lead to that job.
  `CREATE INDEX idempotency_keys_by_job ON idempotency_keys (job);
   DELETE FROM idempotency_keys WHERE job NOT IN (SELECT seq FROM jobs);`,
];

const SQLITE_FULL = 13;
const SQLITE_CORRUPT = 11;
const SQLITE_NOTADB = 26;
/** Pages freed per incremental vacuum step (4 MiB at the default page size), so a step stays short. */
const VACUUM_PAGES = 1024;
/**
 * Free pages kept for new jobs before the file is shrunk: steady retention of small jobs frees
 * pages the next jobs reuse, and shrinking then growing the file again would be work for nothing.
 */
const KEEP_FREE_PAGES = 2048;
/** How often the checkpoint thread copies the WAL into the database file while jobs are written. */
const CHECKPOINT_INTERVAL_MS = 500;
/** Jobs stored that start the checkpoint thread, and its quiet turns (30 s) before it ends itself. */
const CHECKPOINT_START_JOBS = 64;
const CHECKPOINT_IDLE_RUNS = 60;
/**
 * WAL pages (64 MiB) past which a commit checkpoints on the event loop itself: only when the
 * checkpoint thread falls behind or has failed, so the WAL stays bounded anyway.
 */
const BACKSTOP_CHECKPOINT_PAGES = 16384;
/**
 * Retention by count waits until the finished jobs exceed the limit by 1/64 of it (15 at the
 * default 1,000; none below 64), then deletes down to the limit in one transaction. In steady
 * state every job that ends pushes an old one out; this makes that one delete and commit per batch.
 */
const COUNT_SLACK_DIVISOR = 64;
/**
 * Longest wait of a running job's record change (its process group) for a transaction that opens
 * anyway: usually its own first output, a moment later, which then commits both at once.
 */
const UPDATE_WAIT_MS = 100;

/** The database file is damaged or not a database: armhook refuses to start rather than lose jobs. */
export class DamagedStoreError extends Error {
  override readonly name = 'DamagedStoreError';
}

interface OpenJob {
  seq: number;
  bytes: number;
}

/** A running job's record change waiting for the next transaction. */
interface PendingUpdate {
  record: JobRecord;
  committed: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Batch {
  /** Settles once the batch's transaction committed (or failed: then nothing of it was kept). */
  committed: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
  /** A write of this batch failed: the batch is rolled back and refuses further writes. */
  failure?: Error;
}

function errcode(err: unknown): number | undefined {
  const code = (err as { errcode?: unknown }).errcode;
  return typeof code === 'number' ? code & 0xff : undefined;
}

/** SQLite's "disk full" as armhook's StorageFullError; anything else unchanged. */
function storageError(err: unknown): Error {
  if (errcode(err) === SQLITE_FULL) return new StorageFullError(`the disk holding the job database is full (${(err as Error).message})`);
  return err as Error;
}

function isDamage(err: unknown): boolean {
  const code = errcode(err);
  return code === SQLITE_CORRUPT || code === SQLITE_NOTADB;
}

/** Opens (creating if needed) the job database with armhook's settings, checked and migrated. */
function openDatabase(file: string): DatabaseSync {
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(file, { timeout: 5000 });
    const check = db
      .prepare('PRAGMA quick_check')
      .all()
      .map((row) => String(row.quick_check));
    if (check.join() !== 'ok') throw new DamagedStoreError(check.slice(0, 5).join('; '));
    // Before the first table: lets retention give freed pages back to the file system.
    db.exec('PRAGMA auto_vacuum = INCREMENTAL');
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec(`PRAGMA wal_autocheckpoint = ${BACKSTOP_CHECKPOINT_PAGES}`);
    // After a checkpoint a WAL file larger than this is cut back (a burst does not keep its size).
    db.exec(`PRAGMA journal_size_limit = ${BACKSTOP_CHECKPOINT_PAGES * 4096}`);
    migrate(db);
    return db;
  } catch (err) {
    db?.close();
    if (err instanceof DamagedStoreError || isDamage(err)) {
      throw new DamagedStoreError(
        `the job database ${file} is damaged (${(err as Error).message}). armhook does not repair or drop jobs itself: stop it, move ${file} (with its -wal file) aside, and copy the latest \`armhook backup\` file there (or start with none to begin empty)`,
      );
    }
    throw storageError(err);
  }
}

function migrate(db: DatabaseSync): void {
  const version = Number(db.prepare('PRAGMA user_version').get()?.user_version ?? 0);
  if (version > MIGRATIONS.length)
    throw new Error(
      `the job database has schema version ${version}, newer than this armhook knows (${MIGRATIONS.length}); run the newer armhook, or restore a backup made by this one`,
    );
  for (let step = version; step < MIGRATIONS.length; step++) {
    db.exec('BEGIN IMMEDIATE');
    try {
      db.exec(MIGRATIONS[step] ?? '');
      db.exec(`PRAGMA user_version = ${step + 1}`);
      db.exec('COMMIT');
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
  }
}

/**
 * The embedded store: one SQLite file, `<dataDir>/armhook.db`, in WAL mode. Writes made in one
 * turn of the event loop share one transaction, committed right after (setImmediate): a burst of
 * jobs costs one commit, not one each, and what a caller is told (an id, an event) is committed
 * before it is told.
 */
export class SqliteJobStore implements JobStore {
  readonly file: string;
  readonly db: DatabaseSync;
  readonly #open = new Map<string, OpenJob>();
  #batch: Batch | undefined;
  #finishedCount: number;
  #totalBytes: number;
  #vacuuming = false;
  readonly #pending = new Map<string, PendingUpdate>();
  #pendingTimer: NodeJS.Timeout | undefined;
  readonly #sql: Record<
    | 'insertJob'
    | 'updateJob'
    | 'finishJob'
    | 'insertEvent'
    | 'getJob'
    | 'seqOf'
    | 'events'
    | 'lastEvent'
    | 'unfinished'
    | 'oldestFinished'
    | 'olderThan'
    | 'deleteJob'
    | 'deleteEvents'
    | 'deleteKeys'
    | 'insertKey'
    | 'findKey'
    | 'expireKeys',
    StatementSync
  >;
  readonly #lists = new Map<string, StatementSync>();
  readonly checkpointer: Checkpointer;

  constructor(options: { dataDir: string }) {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    this.file = join(options.dataDir, DATABASE_FILE);
    this.db = openDatabase(this.file);
    this.checkpointer = new Checkpointer({
      file: this.file,
      intervalMs: CHECKPOINT_INTERVAL_MS,
      startAfterJobs: CHECKPOINT_START_JOBS,
      idleRuns: CHECKPOINT_IDLE_RUNS,
    });
    const db = this.db;
    this.#sql = {
      insertJob: db.prepare('INSERT INTO jobs (id, hook, status, caller, ended_at, bytes, record) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq'),
      updateJob: db.prepare('UPDATE jobs SET status = ?, record = ? WHERE seq = ?'),
      finishJob: db.prepare('UPDATE jobs SET status = ?, ended_at = ?, bytes = bytes + ?, record = ? WHERE seq = ?'),
      insertEvent: db.prepare('INSERT INTO events (job, last, count, type, at, data) VALUES (?, ?, ?, ?, ?, ?)'),
      getJob: db.prepare('SELECT record FROM jobs WHERE id = ?'),
      seqOf: db.prepare('SELECT seq FROM jobs WHERE id = ?'),
      events: db.prepare('SELECT last, count, type, at, data FROM events WHERE job = (SELECT seq FROM jobs WHERE id = ?) AND last > ? ORDER BY last LIMIT ?'),
      lastEvent: db.prepare('SELECT max(last) AS last FROM events WHERE job = (SELECT seq FROM jobs WHERE id = ?)'),
      unfinished: db.prepare(`SELECT record FROM jobs WHERE status IN ('queued', 'running') ORDER BY id`),
      oldestFinished: db.prepare('SELECT seq, id, bytes FROM jobs WHERE ended_at IS NOT NULL ORDER BY ended_at, seq LIMIT ?'),
      olderThan: db.prepare('SELECT seq, id, bytes FROM jobs WHERE ended_at IS NOT NULL AND ended_at < ? ORDER BY ended_at, seq'),
      deleteJob: db.prepare('DELETE FROM jobs WHERE seq = ?'),
      deleteEvents: db.prepare('DELETE FROM events WHERE job = ?'),
      deleteKeys: db.prepare('DELETE FROM idempotency_keys WHERE job = ?'),
      insertKey: db.prepare('INSERT OR REPLACE INTO idempotency_keys (caller, key, job, fingerprint, created_at) VALUES (?, ?, ?, ?, ?)'),
      findKey: db.prepare(
        'SELECT j.id AS id, k.fingerprint AS fingerprint FROM idempotency_keys k JOIN jobs j ON j.seq = k.job WHERE k.caller = ? AND k.key = ? AND k.created_at >= ?',
      ),
      expireKeys: db.prepare('DELETE FROM idempotency_keys WHERE created_at < ?'),
    };
    const totals = db.prepare('SELECT count(*) AS n, coalesce(sum(bytes), 0) AS bytes FROM jobs WHERE ended_at IS NOT NULL').get();
    this.#finishedCount = Number(totals?.n ?? 0);
    this.#totalBytes = Number(totals?.bytes ?? 0);
  }

  /**
   * Runs `write` in this turn's transaction; the result is the batch's commit. A batch succeeds or
   * fails as a whole: after one failed write (SQLite may have rolled the transaction back) the
   * rest of the batch is refused, and everyone waiting on it hears the failure.
   */
  #write(write: () => void): Promise<void> {
    let batch = this.#batch;
    if (!batch) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const committed = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // A failed batch is reported to those who wait on it; nobody waiting is not an error here.
      committed.catch(() => {});
      batch = this.#batch = { committed, resolve, reject };
      setImmediate(() => this.#commit());
      try {
        this.db.exec('BEGIN IMMEDIATE');
      } catch (err) {
        batch.failure = storageError(err);
      }
      this.#writePending(batch);
    }
    if (batch.failure) throw batch.failure;
    try {
      write();
    } catch (err) {
      batch.failure = storageError(err);
      throw batch.failure;
    }
    return batch.committed;
  }

  /** Writes the waiting record changes in this new transaction; they settle with it. */
  #writePending(batch: Batch): void {
    if (this.#pending.size === 0) return;
    clearTimeout(this.#pendingTimer);
    this.#pendingTimer = undefined;
    for (const pending of this.#pending.values()) {
      try {
        if (batch.failure) throw batch.failure;
        this.#updateRow(pending.record);
        batch.committed.then(pending.resolve, pending.reject);
      } catch (err) {
        batch.failure ??= storageError(err);
        pending.reject(batch.failure);
      }
    }
    this.#pending.clear();
  }

  #commit(): void {
    const batch = this.#batch;
    if (!batch) return;
    this.#batch = undefined;
    try {
      if (batch.failure) throw batch.failure;
      this.db.exec('COMMIT');
      batch.resolve();
    } catch (err) {
      try {
        if (this.db.isTransaction) this.db.exec('ROLLBACK');
      } catch {
        // SQLite already rolled it back
      }
      batch.reject(storageError(err));
    }
    if (this.#vacuuming) this.#vacuumStep();
  }

  /** Gives freed pages back to the file system a step at a time (retention deleted jobs). */
  #vacuumStep(): void {
    try {
      const free = Number(this.db.prepare('PRAGMA freelist_count').get()?.freelist_count ?? 0);
      this.#vacuuming = free > KEEP_FREE_PAGES;
      if (this.#vacuuming) this.db.exec(`PRAGMA incremental_vacuum(${Math.min(VACUUM_PAGES, free - KEEP_FREE_PAGES)})`);
    } catch {
      this.#vacuuming = false; // e.g. the disk is full; the free pages are reused by new jobs anyway
    }
    if (this.#vacuuming) setImmediate(() => this.#batch || this.#vacuumStep());
  }

  async unfinished(): Promise<JobRecord[]> {
    return this.#sql.unfinished.all().map((row) => JSON.parse(String(row.record)) as JobRecord);
  }

  create(record: JobRecord, events: readonly JobEvent[], idempotency?: IdempotencyClaim): Promise<void> {
    this.checkpointer.jobStored();
    return this.#write(() => {
      const seq = Number(this.#sql.insertJob.get(record.id, record.hook, record.status, record.caller, record.endedAt, 0, JSON.stringify(record))?.seq);
      const job = { seq, bytes: 0 };
      this.#open.set(record.id, job);
      this.#insertEvents(job, events);
      if (idempotency) {
        const now = Date.now();
        this.#sql.expireKeys.run(now - IDEMPOTENCY_WINDOW_MS);
        this.#sql.insertKey.run(idempotency.caller, idempotency.key, seq, idempotency.fingerprint, now);
      }
    });
  }

  async idempotent(caller: string, key: string, since: number): Promise<{ jobId: string; fingerprint: string } | undefined> {
    const row = this.#sql.findKey.get(caller, key, since);
    return row ? { jobId: String(row.id), fingerprint: String(row.fingerprint) } : undefined;
  }

  append(id: string, events: readonly JobEvent[]): Promise<void> {
    return this.#write(() => this.#insertEvents(this.#job(id), events));
  }

  /**
   * Joins the open transaction, or waits (at most UPDATE_WAIT_MS) for the next one: a job's
   * process group, known right after it starts, is stored with its first output (or whatever
   * other write comes first) rather than in a commit of its own.
   */
  update(record: JobRecord): Promise<void> {
    if (this.#batch) return this.#write(() => this.#updateRow(record));
    const waiting = this.#pending.get(record.id);
    if (waiting) {
      waiting.record = record;
      return waiting.committed;
    }
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const committed = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#pending.set(record.id, { record, committed, resolve, reject });
    this.#pendingTimer ??= setTimeout(() => this.#flushPending(), UPDATE_WAIT_MS);
    return committed;
  }

  /** Opens a transaction for the waiting record changes (nothing else came along to carry them). */
  #flushPending(): void {
    this.#pendingTimer = undefined;
    if (this.#pending.size === 0) return;
    try {
      this.#write(() => {}).catch(() => {});
    } catch {
      // the transaction could not begin: the waiting changes were rejected with that error
    }
  }

  #updateRow(record: JobRecord): void {
    this.#sql.updateJob.run(record.status, JSON.stringify(record), this.#job(record.id).seq);
  }

  finish(record: JobRecord, done: JobEvent): Promise<void> {
    const job = this.#job(record.id);
    const committed = this.#write(() => {
      this.#insertEvents(job, [done]);
      this.#sql.finishJob.run(record.status, record.endedAt, job.bytes, JSON.stringify(record), job.seq);
    });
    this.#open.delete(record.id);
    return committed.then(() => {
      this.#finishedCount++;
      this.#totalBytes += job.bytes;
    });
  }

  /** A job being written: known since create, or looked up (a job a restart is finishing). */
  #job(id: string): OpenJob {
    let job = this.#open.get(id);
    if (!job) {
      const seq = this.#sql.seqOf.get(id)?.seq;
      if (seq === undefined) throw new Error(`no job ${id} in the store`);
      job = { seq: Number(seq), bytes: 0 };
      this.#open.set(id, job);
    }
    return job;
  }

  /** One row per event, except runs of stdout (or stderr) lines, which share one row. */
  #insertEvents(job: OpenJob, events: readonly JobEvent[]): void {
    for (let i = 0; i < events.length;) {
      const first = events[i] as JobEvent;
      let j = i + 1;
      if (first.event === 'stdout' || first.event === 'stderr') while (j < events.length && events[j]?.event === first.event) j++;
      let data = first.data;
      for (let k = i + 1; k < j; k++) data += `\n${(events[k] as JobEvent).data}`;
      this.#sql.insertEvent.run(job.seq, (events[j - 1] as JobEvent).id, j - i, first.event, first.at, data);
      job.bytes += data.length;
      i = j;
    }
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const row = this.#sql.getJob.get(id);
    return row ? (JSON.parse(String(row.record)) as JobRecord) : undefined;
  }

  async list(filter: JobFilter, limit: number, after?: string): Promise<JobPage> {
    const where: string[] = [];
    const values: string[] = [];
    for (const [column, value] of [
      ['hook', filter.hook],
      ['status', filter.status],
      ['caller', filter.caller],
      ['id <', after],
    ] as const) {
      if (value === undefined) continue;
      where.push(column.includes('<') ? 'id < ?' : `${column} = ?`);
      values.push(value);
    }
    const sql = `SELECT record FROM jobs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    let statement = this.#lists.get(sql);
    if (!statement) this.#lists.set(sql, (statement = this.db.prepare(sql)));
    const items = statement.all(...values, limit + 1).map((row) => JSON.parse(String(row.record)) as JobRecord);
    const more = items.length > limit;
    if (more) items.pop();
    return { items, next: more ? (items.at(-1)?.id ?? null) : null };
  }

  async events(id: string, afterId: number, max: number): Promise<JobEvent[]> {
    const events: JobEvent[] = [];
    for (const row of this.#sql.events.iterate(id, afterId, max)) {
      const last = Number(row.last);
      const count = Number(row.count);
      const type = String(row.type) as JobEventType;
      const at = Number(row.at);
      const data = String(row.data);
      const lines = count === 1 ? [data] : data.split('\n');
      for (let k = Math.max(0, afterId - (last - count + 1) + 1); k < count; k++)
        events.push({ id: last - count + 1 + k, event: type, data: lines[k] ?? '', at });
      if (events.length >= max) break;
    }
    return events;
  }

  async lastEventId(id: string): Promise<number> {
    return Number(this.#sql.lastEvent.get(id)?.last ?? 0);
  }

  async prune(policy: RetentionPolicy, busy?: ReadonlySet<string>): Promise<number> {
    const doomed = new Map<number, { id: string; bytes: number }>();
    const add = (rows: Record<string, unknown>[]): void => {
      for (const row of rows) if (!busy?.has(String(row.id))) doomed.set(Number(row.seq), { id: String(row.id), bytes: Number(row.bytes) });
    };
    if (Number.isFinite(policy.endedBefore)) add(this.#sql.olderThan.all(new Date(policy.endedBefore).toISOString()));
    if (this.#finishedCount > policy.maxJobs + Math.floor(policy.maxJobs / COUNT_SLACK_DIVISOR))
      add(this.#sql.oldestFinished.all(this.#finishedCount - policy.maxJobs));
    if (policy.maxBytes > 0 && this.#totalBytes > policy.maxBytes) {
      let bytes = this.#totalBytes;
      for (const row of this.#sql.oldestFinished.iterate(-1)) {
        if (bytes <= policy.maxBytes) break;
        if (!doomed.has(Number(row.seq))) bytes -= Number(row.bytes);
        add([row]);
      }
    }
    if (doomed.size === 0) return 0;
    await this.#write(() => {
      for (const [seq, job] of doomed) {
        this.#sql.deleteEvents.run(seq);
        this.#sql.deleteKeys.run(seq);
        this.#sql.deleteJob.run(seq);
        this.#finishedCount--;
        this.#totalBytes -= job.bytes;
      }
      this.#vacuuming = true;
    });
    return doomed.size;
  }

  /** Writes an imported job as it was (record, events), in this turn's transaction. */
  importJob(record: JobRecord, events: readonly JobEvent[]): Promise<void> {
    return this.#write(() => {
      if (this.#sql.seqOf.get(record.id)) return;
      const seq = Number(this.#sql.insertJob.get(record.id, record.hook, record.status, record.caller, record.endedAt, 0, JSON.stringify(record))?.seq);
      const job = { seq, bytes: 0 };
      this.#insertEvents(job, events);
      if (FINAL_STATUSES.includes(record.status)) {
        this.#sql.finishJob.run(record.status, record.endedAt, job.bytes, JSON.stringify(record), seq);
        this.#finishedCount++;
        this.#totalBytes += job.bytes;
      }
    });
  }

  async close(): Promise<void> {
    this.#flushPending();
    this.#commit();
    // The last connection to close checkpoints what is left and removes the WAL.
    await this.checkpointer.stop();
    if (this.db.isOpen) this.db.close();
  }
}
