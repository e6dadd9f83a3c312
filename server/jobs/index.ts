export { JobManager, LiveJob } from './manager.ts';
export type { Task, TaskContext, TaskOutcome, JobSpec, JobFilter, JobManagerOptions, JobCounters } from './manager.ts';
export { JobStore, isJobId } from './store.ts';
export { JobLog } from './log.ts';
export type { JobOutput } from './output.ts';
export { JOB_STATUSES, FINAL_STATUSES } from './types.ts';
export type { JobRecord, JobEvent, JobStatus, JobError } from './types.ts';
export { LineSplitter } from './lines.ts';
export { SecretMasker } from './mask.ts';
