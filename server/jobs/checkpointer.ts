// Checkpoints of the job database off the event loop. SQLite's automatic checkpoint runs on the
// connection that commits, so every few thousand jobs one commit on the event loop also copied
// the WAL into the database file and synced it, and every request waited for it. A thread with
// its own connection does it instead, every `intervalMs`, while jobs are being written: it starts
// once `startAfterJobs` jobs were stored and ends itself once the WAL has been quiet for `idleRuns`
// turns, so an idle server holds no thread (each has a heap of its own). Counting jobs rather than
// commits keeps the thread for bursts of jobs, where a checkpoint on the event loop would hold up
// every request; a single job streaming output leaves checkpoints to the store's own automatic
// one, which stays as a backstop at a higher threshold.
import { Worker } from 'node:worker_threads';
import type { CheckpointMessage, CheckpointReport, CheckpointWorkerData } from './checkpoint-worker.ts';

/** The worker module next to this one: TypeScript when running from source, JS in dist/. */
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './checkpoint-worker.ts' : './checkpoint-worker.js', import.meta.url);

export interface CheckpointerOptions extends CheckpointWorkerData {
  startAfterJobs: number;
}

interface Thread {
  worker: Worker;
  exited: Promise<void>;
  answers: Array<(report: CheckpointReport) => void>;
}

export class Checkpointer {
  readonly #options: CheckpointerOptions;
  #thread: Thread | undefined;
  #jobs = 0;
  #stopped = false;
  /** The thread failed (it could not open the database, say): checkpoints stay with the backstop. */
  #failed = false;

  constructor(options: CheckpointerOptions) {
    this.#options = options;
  }

  /** Whether the thread is running now. */
  get running(): boolean {
    return this.#thread !== undefined;
  }

  /** Counts a stored job; the thread starts once enough of them were stored since it last ended. */
  jobStored(): void {
    if (this.#thread || this.#stopped || this.#failed || ++this.#jobs < this.#options.startAfterJobs) return;
    this.#start();
  }

  /** Checkpoints now on the thread (starting it if needed); resolves with what it reports. */
  now(): Promise<CheckpointReport> {
    if (this.#stopped) return Promise.resolve({ error: 'the checkpointer is stopped' });
    const thread = this.#thread ?? this.#start();
    thread.worker.ref();
    return new Promise<CheckpointReport>((resolve) => {
      thread.answers.push(resolve);
      thread.worker.postMessage('now');
    }).finally(() => {
      if (thread.answers.length === 0) thread.worker.unref();
    });
  }

  /** Stops the thread, if running, and closes its connection; resolves once it has exited. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const thread = this.#thread;
    if (!thread) return;
    thread.worker.ref();
    thread.worker.postMessage('stop');
    await thread.exited;
  }

  #start(): Thread {
    const { file, intervalMs, idleRuns } = this.#options;
    // None of the parent's flags: some (--input-type, the test runner's) keep a worker from starting.
    const worker = new Worker(WORKER_URL, { execArgv: [], workerData: { file, intervalMs, idleRuns } satisfies CheckpointWorkerData });
    worker.unref();
    const answers: Thread['answers'] = [];
    const exited = new Promise<void>((resolve) =>
      worker.once('exit', () => {
        for (const answer of answers.splice(0)) answer({ error: 'the checkpoint thread has ended' });
        if (this.#thread?.worker === worker) this.#thread = undefined;
        this.#jobs = 0;
        resolve();
      }),
    );
    // Answers come in the order of the requests; 'idle' is followed by the thread's exit.
    worker.on('message', (message: CheckpointMessage) => {
      if ('report' in message) answers.shift()?.(message.report);
    });
    // A thread that fails leaves checkpoints to the store's own threshold (nothing is lost) and
    // is not started again: a new thread per 64 jobs would cost more than it saves.
    worker.on('error', () => (this.#failed = true));
    this.#thread = { worker, exited, answers };
    return this.#thread;
  }
}
