// The job database's checkpointer thread: copies committed WAL pages into the database file and
// syncs it, on a connection of its own, so that work (milliseconds to tens of them) never runs
// on the server's event loop. A PASSIVE checkpoint waits for no reader or writer. The thread ends
// itself once the WAL has been quiet for `idleRuns` turns (an idle server keeps no thread).
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

export interface CheckpointWorkerData {
  file: string;
  intervalMs: number;
  idleRuns: number;
}

/** The answer to a 'now' message: frames the checkpoint copied, or why it could not run. */
export type CheckpointReport = { checkpointed: number } | { error: string };
/** What the thread says: an answer to 'now', or that it is ending because the WAL went quiet. */
export type CheckpointMessage = { report: CheckpointReport } | { idle: true };

const { file, intervalMs, idleRuns } = workerData as CheckpointWorkerData;
const db = new DatabaseSync(file, { timeout: 1000 });
db.exec('PRAGMA synchronous = NORMAL');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
let lastLog = -1;
let quietRuns = 0;

function run(): CheckpointReport {
  try {
    const row = checkpoint.get();
    const log = Number(row?.['log'] ?? 0);
    const copied = Number(row?.['checkpointed'] ?? 0);
    quietRuns = log === lastLog && copied === log ? quietRuns + 1 : 0;
    lastLog = log;
    return { checkpointed: copied };
  } catch (err) {
    // Busy (a backup, another checkpoint) or a full disk: the next turn tries again, and the
    // store's own checkpoint threshold is the backstop.
    return { error: (err as Error).message };
  }
}

function end(): void {
  clearInterval(timer);
  db.close();
  parentPort?.close();
}

const timer = setInterval(() => {
  run();
  if (quietRuns < idleRuns) return;
  parentPort?.postMessage({ idle: true } satisfies CheckpointMessage);
  end();
}, intervalMs);

parentPort?.on('message', (message: 'now' | 'stop') => {
  if (message === 'now') parentPort?.postMessage({ report: run() } satisfies CheckpointMessage);
  else end();
});
