import type { JobEvent, JobRecord, JobStatus } from './types.ts';

export interface JobFilter {
  hook?: string;
  status?: JobStatus;
  caller?: string;
}

export interface JobPage {
  /** Newest first. */
  items: JobRecord[];
  /** The last id of this page when there are more (the `after` of the next page). */
  next: string | null;
}

export interface RetentionPolicy {
  /** Finished jobs that ended before this time (ms since the epoch) are deleted. */
  endedBefore: number;
  /**
   * At most this many finished jobs are kept, the ones that ended first deleted first. A store
   * may delete in batches, letting up to maxJobs/64 more wait for the next one.
   */
  maxJobs: number;
  /** Finished jobs are deleted, oldest end first, until all jobs' stored bytes fit (0: no limit). */
  maxBytes: number;
}

/** How long an idempotency key answers for the job it started: a day. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;

/** A request's Idempotency-Key (or a signed sender's delivery id): the job it starts answers its repeats. */
export interface IdempotencyClaim {
  caller: string;
  key: string;
  /** Digest of what the request asked for (hook, parameters, body): a repeat must ask the same. */
  fingerprint: string;
}

/**
 * Where jobs live: their records, their events (output and state changes, numbered from 1 per
 * job) and so the queue. The job manager, the readers and retention use only this interface; an
 * implementation is the embedded SQLite file (sqlite-store.ts) or, for several nodes, a shared
 * database. Every implementation passes test/jobs/store-contract.ts.
 *
 * Writes of one job come from one place (the node running it) and in order; a write may be
 * committed together with others made at the same time, and its promise settles when they are. A
 * write the store cannot make because its disk is full throws or rejects with a StorageFullError,
 * and nothing of it is kept.
 */
export interface JobStore {
  /** Jobs a previous process left queued or running (the manager marks them interrupted). */
  unfinished(): Promise<JobRecord[]>;
  /**
   * Stores a new job with its first events (and the idempotency key that started it, in the same
   * transaction); resolves once all are durable (committed).
   */
  create(record: JobRecord, events: readonly JobEvent[], idempotency?: IdempotencyClaim): Promise<void>;
  /** The job a caller's key started at or after `since` (ms since the epoch), if it is still kept. */
  idempotent(caller: string, key: string, since: number): Promise<{ jobId: string; fingerprint: string } | undefined>;
  /** Stores more events of a job (ids after the ones stored), e.g. a chunk of output lines; resolves once committed. */
  append(id: string, events: readonly JobEvent[]): Promise<void>;
  /**
   * Replaces the stored record of a job that is still going (started, process group known);
   * resolves once committed. A store may hold it briefly to share the job's next write's commit.
   */
  update(record: JobRecord): Promise<void>;
  /** Stores a job's final record and its last event (`done`, which carries it); committed when resolved. */
  finish(record: JobRecord, done: JobEvent): Promise<void>;
  get(id: string): Promise<JobRecord | undefined>;
  /** Newest first, `after` being the last id of the previous page. */
  list(filter: JobFilter, limit: number, after?: string): Promise<JobPage>;
  /** Stored events of a job after `afterId`, in order: at least one when there are any, about `max` at most. */
  events(id: string, afterId: number, max: number): Promise<JobEvent[]>;
  /** The id of a job's last stored event (0: none). */
  lastEventId(id: string): Promise<number>;
  /**
   * Deletes finished jobs past the policy (never one that is queued or running, nor one in
   * `busy`: being read); returns how many.
   */
  prune(policy: RetentionPolicy, busy?: ReadonlySet<string>): Promise<number>;
  close(): Promise<void>;
}

/** The disk holding the store is full: nothing more can be recorded until space is freed. */
export class StorageFullError extends Error {
  override readonly name = 'StorageFullError';
}
