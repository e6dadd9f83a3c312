import type { Logger } from 'pino';
import { AppError } from '../errors.ts';
import { Counter, Histogram, JOB_DURATION_BUCKETS } from '../metrics/index.ts';
import type { JobLog } from './log.ts';
import { JobOutput } from './output.ts';
import { JobIds } from './ids.ts';
import { killJobLeftovers } from './reaper.ts';
import type { JobStore } from './store.ts';
import { FINAL_STATUSES, type JobError, type JobRecord, type JobStatus } from './types.ts';

/** How many recent run times the Retry-After estimate averages. */
const RECENT_DURATIONS = 32;
/** Retry-After never asks a caller to wait longer than this (seconds). */
const MAX_RETRY_AFTER_SECONDS = 3600;

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
  task: Task;
}

type AbortReason = 'cancelled' | 'timed-out' | 'interrupted';

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
}

export interface JobFilter {
  hook?: string;
  status?: JobStatus;
  caller?: string;
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
  /** Every record, newest first (ids sort by time). */
  readonly #records = new Map<string, JobRecord>();
  readonly #ids = new JobIds();
  readonly #live = new Map<string, LiveJob>();
  /** Ids of ended jobs, in the order they ended (retention removes from the front). */
  readonly #ended: string[] = [];
  readonly #queue: LiveJob[] = [];
  readonly #running = new Set<LiveJob>();
  /** Running jobs per concurrency key. */
  readonly #keyCounts = new Map<string, number>();
  /** Run times (ms) of the most recent jobs, oldest first: what Retry-After is estimated from. */
  readonly #recentDurations: number[] = [];
  #accepting = true;
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
  }

  /**
   * Loads stored jobs. Jobs a previous process left queued or running become interrupted, and
   * whatever is left of their processes is killed.
   */
  async open(): Promise<JobRecord[]> {
    const interrupted: JobRecord[] = [];
    for (const record of this.#store.loadAll()) {
      if (!FINAL_STATUSES.includes(record.status)) {
        if (record.pgid !== null) {
          const killed = await killJobLeftovers(record.id, record.pgid);
          if (killed.length > 0) this.#log.warn({ jobId: record.id, pids: killed }, 'killed processes left running by an interrupted job');
        }
        const log = await this.#store.reopen(record.id);
        this.#finish(record, log, 'interrupted', null, {
          code: 'interrupted',
          message: 'armhook stopped while this job was queued or running; its output up to then is kept. Start it again if it is still needed.',
        });
        interrupted.push(record);
      }
      this.#records.set(record.id, record);
    }
    // ISO timestamps and ids order correctly by code unit (no localeCompare: it loads ICU's collation data, ~3 MB).
    const ended = [...this.#records.values()].sort((a, b) => compareText(a.endedAt ?? '', b.endedAt ?? '') || compareText(a.id, b.id));
    this.#ended.push(...ended.map((r) => r.id));
    this.prune();
    return interrupted;
  }

  /**
   * Deletes finished jobs past the retention age or count, oldest first. Live jobs are never
   * deleted. Returns how many were removed.
   */
  prune(now = Date.now()): number {
    const cutoff = this.#retentionMs > 0 ? now - this.#retentionMs : -Infinity;
    let removed = 0;
    // #ended is ordered by end time: the front is what ended longest ago (a long job that just
    // ended is not "old" because it started early). Each job is looked at once, when removed.
    while (this.#ended.length > 0) {
      const id = this.#ended[0] ?? '';
      const record = this.#records.get(id);
      const old = record?.endedAt != null && Date.parse(record.endedAt) < cutoff;
      if (record && this.#ended.length <= this.#retentionMax && !old) break;
      this.#ended.shift();
      if (!record) continue;
      this.#store.remove(id);
      this.#records.delete(id);
      removed++;
    }
    if (removed > 0) this.#log.info({ removed }, 'deleted old jobs (retention)');
    return removed;
  }


  /** False once shutdown began: new jobs are refused with 503. */
  get accepting(): boolean {
    return this.#accepting;
  }

  get running(): number {
    return this.#running.size;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Accepts a job: starts it now, queues it, or refuses (429 queue full, 503 shutting down). */
  submit(spec: JobSpec): LiveJob {
    if (!this.#accepting) throw new AppError(503, 'shutting_down', 'armhook is shutting down and accepts no new jobs; retry shortly', undefined, { retryAfterSeconds: 5 });
    // Jobs still queued while a worker is free are all waiting on their concurrency key, so a
    // job whose key is free may pass them (no head-of-line blocking).
    const startsNow = this.#running.size < this.#workers && !this.#keyBusy(spec);
    if (!startsNow && this.#queue.length >= this.#queueLimit) {
      this.counters.refused++;
      throw new AppError(429, 'queue_full', `all ${this.#workers} workers are busy and the queue of ${this.#queueLimit} is full; retry later`, undefined, {
        retryAfterSeconds: this.#retryAfterSeconds(),
      });
    }
    const record: JobRecord = {
      id: this.#ids.next(),
      hook: spec.hook,
      kind: spec.kind,
      method: spec.method,
      status: 'queued',
      exitCode: null,
      createdAt: new Date().toISOString(),
      startedAt: null,
      endedAt: null,
      durationMs: null,
      caller: spec.caller,
      params: spec.params,
      result: null,
      error: null,
      pgid: null,
    };
    // The record and the first events go to the store in one write (it is the job's first cost).
    if (startsNow) {
      record.status = 'running';
      record.startedAt = record.createdAt;
    }
    const position = this.#queue.length + 1;
    const log = this.#store.create(
      record,
      startsNow
        ? [{ event: 'job', data: JSON.stringify({ jobId: record.id, status: 'running' }) }]
        : [
            { event: 'job', data: JSON.stringify({ jobId: record.id, status: 'queued' }) },
            { event: 'queued', data: JSON.stringify({ jobId: record.id, position }) },
          ],
    );
    const job = new LiveJob(record, log, spec);
    this.#records.set(record.id, record);
    this.#live.set(record.id, job);
    if (startsNow) {
      this.#start(job, true);
    } else {
      this.#queue.push(job);
      job.position = position;
    }
    return job;
  }

  get(id: string): JobRecord | undefined {
    return this.#records.get(id);
  }

  live(id: string): LiveJob | undefined {
    return this.#live.get(id);
  }

  /** The job's output log: live, or read from disk for a finished job. */
  async openLog(id: string): Promise<JobLog | undefined> {
    const live = this.#live.get(id);
    if (live) return live.log;
    if (!this.#records.has(id)) return undefined;
    return this.#store.openLog(id);
  }

  /** Newest first; `after` is the last id of the previous page. */
  list(filter: JobFilter, limit: number, after?: string): { items: JobRecord[]; next: string | null } {
    const items: JobRecord[] = [];
    const ids = [...this.#records.keys()].sort().reverse();
    let index = after ? ids.findIndex((id) => id < after) : 0;
    if (index < 0) index = ids.length;
    for (; index < ids.length && items.length <= limit; index++) {
      const record = this.#records.get(ids[index] ?? '');
      if (!record) continue;
      if (filter.hook && record.hook !== filter.hook) continue;
      if (filter.status && record.status !== filter.status) continue;
      if (filter.caller && record.caller !== filter.caller) continue;
      items.push(record);
    }
    const more = items.length > limit;
    if (more) items.pop();
    return { items, next: more ? (items.at(-1)?.id ?? null) : null };
  }

  /** Cancels a queued or running job. Returns false when it had already ended. */
  cancel(id: string): boolean {
    const job = this.#live.get(id);
    if (!job) return false;
    const queuedAt = this.#queue.indexOf(job);
    if (queuedAt >= 0) {
      this.#queue.splice(queuedAt, 1);
      this.#finishLive(job, 'cancelled', null, { code: 'cancelled', message: 'cancelled while queued; it never ran' });
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
    for (const job of this.#queue.splice(0)) {
      this.#finishLive(job, 'interrupted', null, { code: 'interrupted', message: 'armhook shut down before this job started; it never ran' });
    }
    const running = [...this.#running].map((job) => job.done);
    if (running.length === 0) return;
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

  /** Runs a job; `recorded` = it was created running (its record and `job` event are stored). */
  #start(job: LiveJob, recorded = false): void {
    const { record, log, spec } = job;
    this.#running.add(job);
    this.#countKey(spec, 1);
    if (!recorded) {
      record.status = 'running';
      record.startedAt = new Date().toISOString();
      log.writeRecord(record);
    }
    this.#log.info({ jobId: record.id, hook: record.hook, user: record.caller }, 'job started');
    const timer = setTimeout(() => this.#abort(job, 'timed-out'), spec.timeoutMs);
    const output = new JobOutput(log, spec.secrets);
    const context: TaskContext = {
      jobId: record.id,
      signal: job.controller.signal,
      output,
      setProcessGroup: (pgid) => {
        record.pgid = pgid;
        log.writeRecord(record);
      },
    };
    void spec
      .task(context)
      .catch((err: unknown): TaskOutcome => {
        this.#log.error({ jobId: record.id, err }, 'job task failed unexpectedly; this is a bug in armhook, please report it');
        return { ok: false, exitCode: null, error: { code: 'internal', message: 'armhook failed to run this job; see the server log' } };
      })
      .then((outcome) => {
        clearTimeout(timer);
        output.flush();
        this.#running.delete(job);
        this.#countKey(spec, -1);
        const status: JobStatus = job.reason ?? (outcome.ok ? 'succeeded' : 'failed');
        record.result = outcome.result ?? null;
        this.#finishLive(job, status, outcome.exitCode, this.#errorFor(job, status, outcome));
        this.#startNext();
        if (this.#ended.length > this.#retentionMax) this.prune();
      })
      .catch((err: unknown) => this.#log.error({ jobId: record.id, err }, 'finishing a job failed; this is a bug in armhook, please report it'));
  }

  #errorFor(job: LiveJob, status: JobStatus, outcome: TaskOutcome): JobError | null {
    const seconds = Math.round(job.spec.timeoutMs / 1000);
    const detail = outcome.error ? { ...outcome.error } : undefined;
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
    while (this.#running.size < this.#workers) {
      const index = this.#queue.findIndex((job) => !this.#keyBusy(job.spec));
      if (index < 0) break;
      const [job] = this.#queue.splice(index, 1);
      if (job) this.#start(job);
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

  #finishLive(job: LiveJob, status: JobStatus, exitCode: number | null, error: JobError | null): void {
    this.#finish(job.record, job.log, status, exitCode, error);
    this.#live.delete(job.record.id);
    this.#ended.push(job.record.id);
    this.counters.finished.inc([job.record.hook, status]);
    if (job.record.startedAt) {
      const ms = job.record.durationMs ?? 0;
      this.counters.durations.observe([job.record.hook], ms / 1000);
      this.#recentDurations.push(ms);
      if (this.#recentDurations.length > RECENT_DURATIONS) this.#recentDurations.shift();
    }
    job.resolveDone(job.record);
  }

  #finish(record: JobRecord, log: JobLog, status: JobStatus, exitCode: number | null, error: JobError | null): void {
    const ended = new Date();
    record.status = status;
    record.exitCode = exitCode;
    record.error = error;
    record.endedAt = ended.toISOString();
    record.durationMs = record.startedAt ? ended.getTime() - Date.parse(record.startedAt) : 0;
    // The done event carries the final record: it is the record's last line in the store.
    log.append([{ event: 'done', data: JSON.stringify({ jobId: record.id, ...record }) }]);
    log.end();
    this.#log.info(
      { jobId: record.id, hook: record.hook, user: record.caller, status, exitCode, durationMs: record.durationMs, error: error?.code },
      `job ${status}`,
    );
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
