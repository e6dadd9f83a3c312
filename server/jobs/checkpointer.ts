// Checkpoints of the job database off the event loop. SQLite's automatic checkpoint runs on the
// connection that commits, so every few thousand jobs one commit on the event loop also copied
// the WAL into the database file and synced it, and every request waited for it (the dispatch
// benchmark's p99 latency). A thread with its own connection does it instead, every
// `intervalMs`; the store's own automatic checkpoint stays as a backstop at a higher threshold.
import { Worker } from 'node:worker_threads';
import type { CheckpointReport, CheckpointWorkerData } from './checkpoint-worker.ts';

/** The worker module next to this one: TypeScript when running from source, JS in dist/. */
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './checkpoint-worker.ts' : './checkpoint-worker.js', import.meta.url);

export class Checkpointer {
  readonly #worker: Worker;
  readonly #exited: Promise<void>;
  readonly #reports: Array<(report: CheckpointReport) => void> = [];

  constructor(options: CheckpointWorkerData) {
    // None of the parent's flags: some (--input-type, the test runner's) keep a worker from starting.
    this.#worker = new Worker(WORKER_URL, { execArgv: [], workerData: options satisfies CheckpointWorkerData });
    this.#worker.unref();
    this.#exited = new Promise((resolve) =>
      this.#worker.once('exit', () => {
        for (const answer of this.#reports.splice(0)) answer({ error: 'the checkpoint thread has stopped' });
        resolve();
      }),
    );
    // Answers come in the order of the requests.
    this.#worker.on('message', (report: CheckpointReport) => this.#reports.shift()?.(report));
    // A thread that fails leaves checkpoints to the store's own threshold; nothing is lost.
    this.#worker.on('error', () => undefined);
  }

  /** Checkpoints now; resolves with what the thread reports. */
  now(): Promise<CheckpointReport> {
    this.#worker.ref();
    return new Promise<CheckpointReport>((resolve) => {
      this.#reports.push(resolve);
      this.#worker.postMessage('now');
    }).finally(() => {
      if (this.#reports.length === 0) this.#worker.unref();
    });
  }

  /** Stops the thread and closes its connection; resolves once it has exited. */
  async stop(): Promise<void> {
    this.#worker.ref();
    this.#worker.postMessage('stop');
    await this.#exited;
  }
}
