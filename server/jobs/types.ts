export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'timed-out', 'cancelled', 'interrupted'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const FINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'timed-out', 'cancelled', 'interrupted'];

export interface JobError {
  code: string;
  message: string;
  /** For handlers: the HTTP status JSON mode answers with (ARM 4xx passed through, else 502). */
  status?: number;
  [key: string]: unknown;
}

/** The job record: what GET /jobs/<id> returns and what the `done` event carries. */
export interface JobRecord {
  id: string;
  /** Without a leading slash, e.g. "vm/create". */
  hook: string;
  kind: 'script' | 'handler';
  method: string;
  status: JobStatus;
  /** Scripts only; null for handlers and for scripts that did not exit by themselves. */
  exitCode: number | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  caller: string;
  /** Secret values are stored as ***. */
  params: Record<string, string>;
  result: unknown;
  error: JobError | null;
  /** Process group of a running script, so a restart can end what is left of it. */
  pgid: number | null;
}

export type JobEventType = 'job' | 'queued' | 'stdout' | 'stderr' | 'progress' | 'done';

/** One event of a job's output. `data` is a line of text for stdout/stderr, JSON text otherwise. */
export interface JobEvent {
  id: number;
  event: JobEventType;
  data: string;
  /** Milliseconds since the epoch. */
  at: number;
}
