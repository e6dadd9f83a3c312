import type { JobSummary } from './follow.ts';

/**
 * Exit codes of `armhook call` and `armhook logs --follow`. A failed script's own exit code
 * passes through, so a pipeline step fails exactly when the script does; armhook's own outcomes
 * use codes from timeout(1) and sysexits.h that scripts rarely use.
 */
export const EXIT = {
  succeeded: 0,
  /** A failed typed handler, or a script that ended without an exit code of its own. */
  failed: 1,
  usage: 2,
  /** 400, 404, 409, 413 … : the request was refused; nothing ran. */
  refused: 65,
  /** The server could not be reached, or a dropped stream could not be resumed. */
  unreachable: 69,
  /** The server was restarted while the job ran (interrupted), or 429/503: try again later. */
  tryAgain: 75,
  /** 401/403: credentials missing or wrong, or not allowed to run this hook. */
  forbidden: 77,
  timedOut: 124,
  cancelled: 125,
} as const;

/** The table for --help and the README. */
export const EXIT_HELP = `Exit codes:
  0        the job succeeded
  1-255    the job failed: the script's own exit code (1 for a typed handler, or a script killed by a signal)
  124      the job timed out
  125      the job was cancelled
  75       the job was interrupted (the server restarted), or the server is busy (429/503): try again
  65       the request was refused (bad or missing parameter, unknown hook …): nothing ran
  77       authentication failed or the caller may not run this hook (401/403)
  69       the server could not be reached, or a dropped stream could not be resumed
  2        wrong arguments to armhook itself
`;

export function exitCodeForJob(record: Pick<JobSummary, 'status' | 'exitCode'>): number {
  switch (record.status) {
    case 'succeeded':
      return EXIT.succeeded;
    case 'timed-out':
      return EXIT.timedOut;
    case 'cancelled':
      return EXIT.cancelled;
    case 'interrupted':
      return EXIT.tryAgain;
    default:
      return record.exitCode !== null && record.exitCode > 0 && record.exitCode < 256 ? record.exitCode : EXIT.failed;
  }
}

export function exitCodeForRefusal(status: number): number {
  if (status === 401 || status === 403) return EXIT.forbidden;
  if (status === 429 || status === 503) return EXIT.tryAgain;
  if (status >= 400 && status < 500) return EXIT.refused;
  return EXIT.unreachable;
}
