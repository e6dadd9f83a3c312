// The job database's checkpointer thread: copies committed WAL pages into the database file and
// syncs it, on a connection of its own, so that work (milliseconds to tens of them) never runs
// on the server's event loop. A PASSIVE checkpoint waits for no reader or writer.
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

export interface CheckpointWorkerData {
  file: string;
  intervalMs: number;
}

/** The answer to a 'now' message: frames the checkpoint copied, or why it could not run. */
export type CheckpointReport = { checkpointed: number } | { error: string };

const { file, intervalMs } = workerData as CheckpointWorkerData;
const db = new DatabaseSync(file, { timeout: 1000 });
db.exec('PRAGMA synchronous = NORMAL');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');

function run(): CheckpointReport {
  try {
    return { checkpointed: Number(checkpoint.get()?.['checkpointed'] ?? 0) };
  } catch (err) {
    // Busy (a backup, another checkpoint) or a full disk: the next turn tries again, and the
    // store's own checkpoint threshold is the backstop.
    return { error: (err as Error).message };
  }
}

const timer = setInterval(run, intervalMs);
parentPort?.on('message', (message: 'now' | 'stop') => {
  if (message === 'now') return parentPort?.postMessage(run());
  clearInterval(timer);
  db.close();
  parentPort?.close();
});
