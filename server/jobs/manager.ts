import type { Logger } from 'pino';
import { AppError } from '../errors.ts';
import { Counter, Histogram, JOB_DURATION_BUCKETS } from '../metrics/index.ts';
import { JobLog } from './job-log.ts';
import { IDEMPOTENCY_WINDOW_MS, StorageFullError, type IdempotencyClaim, type JobFilter, type JobPage, type JobStore } from './job-store.ts';
import { JobOutput } from './output.ts';
import { JobIds } from './ids.ts';
import { killJobLeftovers, LeftoverReaper } from './reaper.ts';
import type { JobError, JobEvent, JobEventType, JobRecord, JobStatus } from './types.ts';

/** How many recent run times the Retry-After estimate averages. */
const RECENT_DURATIONS = 32;
/** Retry-After never asks a caller to wait longer than this (seconds). */
const MAX_RETRY_AFTER_SECONDS = 3600;
/** Jobs that end within this many ms share one scan for leftover processes (a scan reads every process's environment). */
const REAP_BATCH_MS = 1000;

/** What a task gets while it runs. */
export interface TaskContext {
  jobId: string;
  signal: AbortSignal;
  output: JobOutput;
  /** Scripts report their process group so cancel, timeout and restart can end all of it. */
  setProcessGroup(pgid: number): void;
}

export interface TaskOutcome {
  ok: boolean;
  exitCode: number | null;
  result?: unknown;
  error?: JobError;
}

export type Task = (context: TaskContext) => Promise<TaskOutcome>;

export interface JobSpec {
  hook: string;
  kind: 'script' | 'handler';
  method: string;
  caller: string;
  /** As stored and shown: secrets already masked. */
  params: Record<string, string>;
  /** Values to mask in every output line. */
  secrets: string[];
  timeoutMs: number;
  /** At most `limit` jobs with the same key run at once (e.g. one vm/create per resource group). */
  concurrency?: { key: string; limit: number };
  /** The request's idempotency key: stored with the job, so a repeat gets this job (see submitOnce). */
  idempotency?: IdempotencyClaim;
  task: Task;
}

/** What submitOnce found or started. */
export interface IdempotentSubmission {
  /** The job the key names: new, or the one an earlier request with this key started. */
  id: string;
  /** True when the job was started by an earlier request. */
  repeat: boolean;
  /** The fingerprint the key's job was started for. */
  fingerprint: string;
}

type AbortReason = 'cancelled' | 'timed-out' | 'interrupted' | 'storage_full';

/** How often a final record the full disk refused is tried again. */
const SAVE_RETRY_MS = 5000;

/** Counts for /metrics, kept as plain numbers so nothing is loaded until someone scrapes. */
export interface JobCounters {
  /** Jobs that ended, by hook and final status */
  finished: Counter;
  /** Run time of jobs that ran, by hook */
  durations: Histogram;
  refused: number;
}

/** A job this process is running or holding in its queue. */
export class LiveJob {
  readonly record: JobRecord;
  readonly log: JobLog;
  readonly spec: JobSpec;
  readonly controller = new AbortController();
  reason: AbortReason | undefined;
  /** Place in the queue last announced to readers (1 = next to start). */
  position = 0;
  readonly done: Promise<JobRecord>;
  resolveDone!: (record: JobRecord) => void;

  constructor(record: JobRecord, log: JobLog, spec: JobSpec) {
    this.record = record;
    this.log = log;
    this.spec = spec;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }
}

export interface JobManagerOptions {
  store: JobStore;
  log: Logger;
  workers: number;
  queue: number;
  /** Finished jobs older than this are deleted (0: kept by age forever). */
  retentionDays: number;
  /** At most this many finished jobs are kept, the oldest deleted first. */
  retentionMax: number;
  /** Finished jobs are deleted, oldest first, while all jobs' output takes more bytes (0: no limit). */
  retentionBytes?: number;
}

/**
 * The job pool: a bounded queue in front of a fixed number of workers. Jobs are independent of
 * the requests that start them; their records and output live in the store.
 */
export class JobManager {
  readonly #store: JobStore;
  readonly #log: Logger;
  readonly #workers: number;
  readonly #queueLimit: number;
  readonly #retentionMs: number;
  readonly #retentionMax: number;
  readonly #retentionBytes: number;
  readonly #ids = new JobIds();
  readonly #live = new Map<string, LiveJob>();
  /** Ended jobs whose final record the store could not take yet (disk full): retried, served from here. */
  readonly #unsaved = new Map<string, { record: JobRecord; done: JobEvent; log: JobLog }>();
  #saveTimer: NodeJS.Timeout | undefined;
  /** Open readers per job: retention keeps a job while it is read. */
  readonly #readers = new Map<string, number>();
  readonly #queue: LiveJob[] = [];
  /** Queued jobs whose record is being committed (they hold a queue place already). */
  #queuedCount = 0;
  readonly #running = new Set<LiveJob>();
  /** Workers taken: running jobs, and jobs about to run whose record is being committed. */
  #runningCount = 0;
  /** Running jobs per concurrency key. */
  readonly #keyCounts = new Map<string, number>();
  /** Run times (ms) of the most recent jobs, oldest first: what Retry-After is estimated from. */
  readonly #recentDurations: number[] = [];
  readonly #reaper: LeftoverReaper;
  #accepting = true;
  /** Submissions with an idempotency key in progress, by caller and key: concurrent repeats share one. */
  readonly #claims = new Map<string, Promise<IdempotentSubmission>>();
  readonly counters: JobCounters = {
    finished: new Counter('armhook_jobs_finished_total', 'Jobs that ended, by hook and final status', ['hook', 'status']),
    durations: new Histogram('armhook_job_duration_seconds', 'Run time of jobs that started, by hook', ['hook'], JOB_DURATION_BUCKETS),
    refused: 0,
  };

  constructor(options: JobManagerOptions) {
    this.#store = options.store;
    this.#log = options.log;
    this.#workers = options.workers;
    this.#queueLimit = options.queue;
    this.#retentionMs = options.retentionDays * 24 * 3600 * 1000;
    this.#retentionMax = options.retentionMax;
    this.#retentionBytes = options.retentionBytes ?? 0;
    this.#reaper = new LeftoverReaper({ batchMs: REAP_BATCH_MS, log: this.#log });
  }

  /**
   * Jobs a previous process left queued or running become interrupted (their output is kept),
   * and whatever is left of their processes is killed. Then retention runs once.
   */
  async open(): Promise<JobRecord[]> {
    const interrupted = await this.#store.unfinished();
    // Leftovers are found by the ARMHOOK_JOB_ID in their environment, not by process group, so
    // every interrupted job is looked for: one whose process group was not stored yet (a crash
    // right after its script started) may have left processes too.
    for (const [jobId, pids] of await killJobLeftovers(interrupted.map((record) => record.id))) {
      this.#log.warn({ jobId, pids }, 'killed processes left running by an interrupted job');
    }
    for (const record of interrupted) {
      const log = JobLog.reopen(this.#store, record.id, await this.#store.lastEventId(record.id));
      await this.#finish(record, log, 'interrupted', null, {
        code: 'interrupted',
        message: 'armhook stopped while this job was queued or running; its output up to then is kept. Start it again if it is still needed.',
      });
    }
    await this.prune();
    return interrupted;
  }

  /**
   * Deletes finished jobs past the retention age, count or size, oldest first. Live jobs and
   * jobs being read are never deleted. Returns how many were removed.
   */
  async prune(now = Date.now()): Promise<number> {
    const policy = {
      endedBefore: this.#retentionMs > 0 ? now - this.#retentionMs : Number.NEGATIVE_INFINITY,
      maxJobs: this.#retentionMax,
      maxBytes: this.#retentionBytes,
    };
    let removed = 0;
    try {
      removed = await this.#store.prune(policy, new Set(this.#readers.keys()));
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'could not delete old jobs (retention); will try again as jobs end');
    }
    if (removed > 0) this.#log.info({ removed }, 'deleted old jobs (retention)');
    return removed;
  }

  /** False once shutdown began: new jobs are refused with 503. */
  get accepting(): boolean {
    return this.#accepting;
  }

  get running(): number {
    return this.#runningCount;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Accepts a job: starts it now, queues it, or refuses (429 queue full, 503 shutting down, 507 disk full). */
  async submit(spec: JobSpec): Promise<LiveJob> {
    const startsNow = this.#admit(spec);
    const record = this.#newRecord(spec, startsNow);
    const position = this.#queue.length + this.#queuedCount + 1;
    // The worker or the queue place is taken now: other requests arrive while the store commits.
    if (startsNow) this.#claim(spec);
    else this.#queuedCount++;
    const log = await this.#createLog(spec, record, startsNow, position);
    const job = new LiveJob(record, log, spec);
    this.#live.set(record.id, job);
    if (!this.#accepting) {
      // Shutdown began while the record was being committed: end the job here, never leave it behind.
      this.#giveBack(spec, startsNow);
      await this.#finishLive(job, 'interrupted', null, { code: 'interrupted', message: 'armhook shut down before this job started; it never ran' });
      return job;
    }
    if (startsNow) {
      this.#run(job);
    } else {
      this.#queuedCount--;
      this.#queue.push(job);
      job.position = position;
      this.#startNext();
    }
    return job;
  }

  /** Whether `spec` starts now (a worker and its concurrency key are free); throws when it can neither start nor wait. */
  #admit(spec: JobSpec): boolean {
    if (!this.#accepting)
      throw new AppError(503, 'shutting_down', 'armhook is shutting down and accepts no new jobs; retry shortly', undefined, { retryAfterSeconds: 5 });
    // Jobs still queued while a worker is free are all waiting on their concurrency key, so a
    // job whose key is free may pass them (no head-of-line blocking).
    const startsNow = this.#runningCount < this.#workers && !this.#keyBusy(spec);
    if (!startsNow && this.#queue.length + this.#queuedCount >= this.#queueLimit) {
      this.counters.refused++;
      throw new AppError(429, 'queue_full', `all ${this.#workers} workers are busy and the queue of ${this.#queueLimit} is full; retry later`, undefined, {
        retryAfterSeconds: this.#retryAfterSeconds(),
      });
    }
    return startsNow;
  }

  #newRecord(spec: JobSpec, startsNow: boolean): JobRecord {
    const createdAt = new Date().toISOString();
    return {
      id: this.#ids.next(),
      hook: spec.hook,
      kind: spec.kind,
      method: spec.method,
      status: startsNow ? 'running' : 'queued',
      exitCode: null,
      createdAt,
      startedAt: startsNow ? createdAt : null,
      endedAt: null,
      durationMs: null,
      caller: spec.caller,
      params: spec.params,
      result: null,
      error: null,
      pgid: null,
    };
  }

  /** Frees the worker or queue place `submit` took for a job that will not run. */
  #giveBack(spec: JobSpec, startsNow: boolean): void {
    if (startsNow) this.#release(spec);
    else this.#queuedCount--;
  }

  /**
   * Stores the record with its first events (committed before the id is told). A disk too full
   * to record it refuses the job (507, nothing ran) and gives its place back.
   */
  async #createLog(spec: JobSpec, record: JobRecord, startsNow: boolean, position: number): Promise<JobLog> {
    const first: Array<{ event: JobEventType; data: string }> = [{ event: 'job', data: JSON.stringify({ jobId: record.id, status: record.status }) }];
    if (!startsNow) first.push({ event: 'queued', data: JSON.stringify({ jobId: record.id, position }) });
    try {
      return await JobLog.create(this.#store, record, first, this.#logHooks(record.id), spec.idempotency);
    } catch (err) {
      this.#giveBack(spec, startsNow);
      this.#startNext();
      if (!(err instanceof StorageFullError)) throw err;
      this.#log.error(
        { hook: spec.hook, err: err.message },
        'refused a job: it cannot be recorded because the disk holding ARMHOOK_DATA_DIR is full. Free space there (or lower ARMHOOK_RETENTION_SIZE); armhook recovers by itself',
      );
      throw new AppError(
        507,
        'storage_full',
        'armhook cannot record new jobs because its disk is full; nothing was run. Retry once the operator has freed space',
        undefined,
        { retryAfterSeconds: 60 },
      );
    }
  }

  /**
   * Submits a job unless the caller's key already started one within the idempotency window
   * (then that job's id, `repeat`). Concurrent requests with the same key share one submission,
   * so they never race into two jobs; the key is stored with the job, so it outlives a restart.
   * The caller compares `fingerprint` to decide whether the repeat asked for the same thing.
   */
  async submitOnce(spec: JobSpec & { idempotency: IdempotencyClaim }): Promise<IdempotentSubmission> {
    const slot = `${spec.idempotency.caller}\n${spec.idempotency.key}`;
    const pending = this.#claims.get(slot);
    if (pending) return { ...(await pending), repeat: true };
    const claim = (async (): Promise<IdempotentSubmission> => {
      const found = await this.#store.idempotent(spec.idempotency.caller, spec.idempotency.key, Date.now() - IDEMPOTENCY_WINDOW_MS);
      if (found) return { id: found.jobId, repeat: true, fingerprint: found.fingerprint };
      const job = await this.submit(spec);
      return { id: job.record.id, repeat: false, fingerprint: spec.idempotency.fingerprint };
    })();
    this.#claims.set(slot, claim);
    try {
      return await claim;
    } finally {
      this.#claims.delete(slot);
    }
  }

  /** What a job's log reports to the manager: storage failures and its readers. */
  #logHooks(id: string): { onStorageFailure: (err: Error) => void; onReaders: (delta: 1 | -1) => void } {
    return {
      onStorageFailure: (err) => {
        const job = this.#live.get(id);
        this.#log.error(
          { jobId: id, err: err.message },
          'cannot store job output: the disk holding ARMHOOK_DATA_DIR is full. The job is stopped (storage_full) and keeps what was stored; free space there',
        );
        if (job) this.#abort(job, 'storage_full');
      },
      onReaders: (delta) => {
        const count = (this.#readers.get(id) ?? 0) + delta;
        if (count > 0) this.#readers.set(id, count);
        else this.#readers.delete(id);
      },
    };
  }

  /** A job's record: a live job's from memory, else the store's. */
  async get(id: string): Promise<JobRecord | undefined> {
    return this.#live.get(id)?.record ?? this.#unsaved.get(id)?.record ?? (await this.#store.get(id));
  }

  live(id: string): LiveJob | undefined {
    return this.#live.get(id);
  }

  /** The job's events: the live log of a job running here, or the stored one. */
  async openLog(id: string): Promise<JobLog | undefined> {
    const live = this.#live.get(id)?.log ?? this.#unsaved.get(id)?.log;
    if (live) return live;
    if (!(await this.#store.get(id))) return undefined;
    return JobLog.stored(this.#store, id, await this.#store.lastEventId(id), this.#logHooks(id));
  }

  /** Newest first; `after` is the last id of the previous page. Live jobs show their current state. */
  async list(filter: JobFilter, limit: number, after?: string): Promise<JobPage> {
    const page = await this.#store.list(filter, limit, after);
    return { items: page.items.map((record) => this.#live.get(record.id)?.record ?? this.#unsaved.get(record.id)?.record ?? record), next: page.next };
  }

  /** Cancels a queued or running job. Returns false when it had already ended. */
  cancel(id: string): boolean {
    const job = this.#live.get(id);
    if (!job) return false;
    const queuedAt = this.#queue.indexOf(job);
    if (queuedAt >= 0) {
      this.#queue.splice(queuedAt, 1);
      void this.#finishLive(job, 'cancelled', null, { code: 'cancelled', message: 'cancelled while queued; it never ran' });
      this.#announcePositions();
      return true;
    }
    this.#abort(job, 'cancelled');
    return true;
  }

  /**
   * Stops accepting jobs, ends queued ones, waits up to `drainMs` for running ones, then aborts
   * what is left (recorded as interrupted). Resolves when every job has ended.
   */
  async shutdown(drainMs: number): Promise<void> {
    this.#accepting = false;
    await Promise.all(
      this.#queue
        .splice(0)
        .map((job) => this.#finishLive(job, 'interrupted', null, { code: 'interrupted', message: 'armhook shut down before this job started; it never ran' })),
    );
    const running = [...this.#running].map((job) => job.done);
    if (running.length === 0) {
      await this.#reaper.flush();
      return this.#finalSave();
    }
    this.#log.info({ running: running.length, drainMs }, 'waiting for running jobs to finish before exit');
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      Promise.all(running).then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), drainMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
    if (!drained) {
      for (const job of this.#running) this.#abort(job, 'interrupted');
      await Promise.all(running);
    }
    await this.#reaper.flush();
    return this.#finalSave();
  }

  /** A last try for final records the full disk refused; what still fails reads interrupted after a restart. */
  async #finalSave(): Promise<void> {
    if (this.#unsaved.size === 0) return;
    await this.#saveUnsaved();
    if (this.#unsaved.size > 0)
      this.#log.error(
        { jobs: [...this.#unsaved.keys()] },
        'could not store the final record of these jobs (disk full); after a restart they read interrupted, with the output that was stored',
      );
  }

  #keyBusy(spec: JobSpec): boolean {
    return spec.concurrency !== undefined && (this.#keyCounts.get(spec.concurrency.key) ?? 0) >= spec.concurrency.limit;
  }

  #countKey(spec: JobSpec, delta: 1 | -1): void {
    if (!spec.concurrency) return;
    const count = (this.#keyCounts.get(spec.concurrency.key) ?? 0) + delta;
    if (count > 0) this.#keyCounts.set(spec.concurrency.key, count);
    else this.#keyCounts.delete(spec.concurrency.key);
  }

  /**
   * When the queue will have drained: queued jobs × the mean run time of recent jobs ÷ workers.
   * Before any job has ended, the time the running ones have taken so far stands in.
   */
  #retryAfterSeconds(): number {
    let perJobMs: number;
    if (this.#recentDurations.length > 0) {
      perJobMs = this.#recentDurations.reduce((a, b) => a + b, 0) / this.#recentDurations.length;
    } else {
      const now = Date.now();
      const started = [...this.#running].map((job) => Date.parse(job.record.startedAt ?? '') || now);
      perJobMs = started.length > 0 ? Math.max(...started.map((t) => now - t)) : 1000;
    }
    const seconds = Math.ceil((this.#queue.length * perJobMs) / this.#workers / 1000);
    return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, seconds));
  }

  #abort(job: LiveJob, reason: AbortReason): void {
    if (job.controller.signal.aborted) return;
    job.reason = reason;
    job.controller.abort(reason);
  }

  /** A job takes a worker (and a place under its concurrency key). */
  #claim(spec: JobSpec): void {
    this.#runningCount++;
    this.#countKey(spec, 1);
  }

  #release(spec: JobSpec): void {
    this.#runningCount--;
    this.#countKey(spec, -1);
  }

  /** Runs a job that holds a worker (see #claim); its record says running. */
  #run(job: LiveJob): void {
    const { record, log, spec } = job;
    this.#running.add(job);
    this.#log.info({ jobId: record.id, hook: record.hook, user: record.caller }, 'job started');
    const timer = setTimeout(() => this.#abort(job, 'timed-out'), spec.timeoutMs);
    const output = new JobOutput(log, spec.secrets);
    const context: TaskContext = {
      jobId: record.id,
      signal: job.controller.signal,
      output,
      setProcessGroup: (pgid) => {
        record.pgid = pgid;
        log.update(record);
      },
    };
    void spec
      .task(context)
      .catch((err: unknown): TaskOutcome => {
        this.#log.error({ jobId: record.id, err }, 'job task failed unexpectedly; this is a bug in armhook, please report it');
        return { ok: false, exitCode: null, error: { code: 'internal', message: 'armhook failed to run this job; see the server log' } };
      })
      .then(async (outcome) => {
        clearTimeout(timer);
        output.flush();
        // What the script started in a session of its own (setsid) outlives its process group.
        if (record.pgid !== null) this.#reaper.reap(record.id);
        this.#running.delete(job);
        this.#release(spec);
        const status: JobStatus = job.reason === 'storage_full' ? 'failed' : (job.reason ?? (outcome.ok ? 'succeeded' : 'failed'));
        record.result = outcome.result ?? null;
        // The record ends (endedAt) before the next job starts; its commit may follow.
        const finished = this.#finishLive(job, status, outcome.exitCode, this.#errorFor(job, status, outcome));
        this.#startNext();
        await finished;
        await this.prune();
      })
      .catch((err: unknown) => this.#log.error({ jobId: record.id, err }, 'finishing a job failed; this is a bug in armhook, please report it'));
  }

  #errorFor(job: LiveJob, status: JobStatus, outcome: TaskOutcome): JobError | null {
    const seconds = Math.round(job.spec.timeoutMs / 1000);
    const detail = outcome.error ? { ...outcome.error } : undefined;
    if (job.reason === 'storage_full') {
      return {
        ...detail,
        code: 'storage_full',
        message: "the disk holding armhook's job database filled up, so the job was stopped; its output up to then is kept. Run it again once space is freed",
      };
    }
    switch (status) {
      case 'succeeded':
        return null;
      case 'timed-out':
        return { ...detail, code: 'timed_out', message: `timed out after ${seconds} s and was stopped${detail?.message ? `: ${detail.message}` : ''}` };
      case 'cancelled':
        return { ...detail, code: 'cancelled', message: `cancelled while running${detail?.message ? `: ${detail.message}` : ''}` };
      case 'interrupted':
        return { ...detail, code: 'interrupted', message: 'armhook shut down while this job was running and stopped it' };
      default:
        return outcome.error ?? { code: 'exit_code', message: `the script exited with code ${outcome.exitCode ?? 'none'}` };
    }
  }

  #startNext(): void {
    while (this.#runningCount < this.#workers) {
      const index = this.#queue.findIndex((job) => !this.#keyBusy(job.spec));
      if (index < 0) break;
      const [job] = this.#queue.splice(index, 1);
      if (!job) break;
      this.#claim(job.spec);
      job.record.status = 'running';
      job.record.startedAt = new Date().toISOString();
      job.log.update(job.record);
      this.#run(job);
    }
    this.#announcePositions();
  }

  #announcePositions(): void {
    this.#queue.forEach((job, index) => {
      if (job.position === index + 1) return;
      job.position = index + 1;
      job.log.append([{ event: 'queued', data: JSON.stringify({ jobId: job.record.id, position: job.position }) }]);
    });
  }

  async #finishLive(job: LiveJob, status: JobStatus, exitCode: number | null, error: JobError | null): Promise<void> {
    await this.#finish(job.record, job.log, status, exitCode, error);
    this.#live.delete(job.record.id);
    this.counters.finished.inc([job.record.hook, status]);
    if (job.record.startedAt) {
      const ms = job.record.durationMs ?? 0;
      this.counters.durations.observe([job.record.hook], ms / 1000);
      this.#recentDurations.push(ms);
      if (this.#recentDurations.length > RECENT_DURATIONS) this.#recentDurations.shift();
    }
    job.resolveDone(job.record);
  }

  async #finish(record: JobRecord, log: JobLog, status: JobStatus, exitCode: number | null, error: JobError | null): Promise<void> {
    const ended = new Date();
    record.status = status;
    record.exitCode = exitCode;
    record.error = error;
    record.endedAt = ended.toISOString();
    record.durationMs = record.startedAt ? ended.getTime() - Date.parse(record.startedAt) : 0;
    // The done event carries the final record.
    const { stored, done } = await log.finish(record);
    if (!stored) this.#keepUnsaved({ record, done, log });
    this.#log.info(
      { jobId: record.id, hook: record.hook, user: record.caller, status, exitCode, durationMs: record.durationMs, error: error?.code },
      `job ${status}`,
    );
  }

  /**
   * The store refused a final record (disk full): it is served from memory and stored again
   * every few seconds until that works. Until then the stored record says running, so if
   * armhook stops first the job reads interrupted after the restart, with its output.
   */
  #keepUnsaved(unsaved: { record: JobRecord; done: JobEvent; log: JobLog }): void {
    this.#unsaved.set(unsaved.record.id, unsaved);
    this.#saveTimer ??= setInterval(() => void this.#saveUnsaved(), SAVE_RETRY_MS);
    this.#saveTimer.unref();
  }

  async #saveUnsaved(): Promise<void> {
    for (const [id, { record, done }] of this.#unsaved) {
      try {
        await this.#store.finish(record, done);
      } catch {
        return;
      }
      this.#unsaved.delete(id);
      this.#log.info({ jobId: id }, 'stored the final record of a job the full disk had refused');
    }
    clearInterval(this.#saveTimer);
    this.#saveTimer = undefined;
  }
}
