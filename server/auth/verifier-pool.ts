// Password verification off the event loop: a few worker threads check passwords one at a time
// each, and at most `maxInFlight` checks may be running or waiting. Past that bound a check is
// refused at once, before anything is hashed, so a guessing load costs the server a bounded
// amount of CPU and never delays requests that need no hashing (health checks, cached
// credentials). Threads start with the first check and stop holding the process open when idle.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { VerifyRequest, VerifyResponse } from './verify-worker.ts';

export interface VerifierPoolOptions {
  /** Threads that hash passwords (at least 1). */
  threads: number;
  /** Checks running or waiting at once (at least 1); past it `tryVerify` refuses. */
  maxInFlight: number;
  log: Logger;
}

interface Task extends VerifyRequest {
  resolve(ok: boolean): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  task: Task | undefined;
}

/** The worker module next to this one: TypeScript when running from source, JS in dist/. */
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './verify-worker.ts' : './verify-worker.js', import.meta.url);

export class VerifierPool {
  readonly #threads: number;
  readonly #maxInFlight: number;
  readonly #log: Logger;
  readonly #slots: Slot[] = [];
  readonly #waiting: Task[] = [];
  #inFlight = 0;
  #nextId = 0;
  #closed = false;

  constructor(opts: VerifierPoolOptions) {
    this.#threads = Math.max(1, Math.floor(opts.threads));
    this.#maxInFlight = Math.max(1, Math.floor(opts.maxInFlight));
    this.#log = opts.log;
  }

  /** Checks running or waiting now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Checks `password` against `hash` on a pool thread. Returns undefined, having hashed nothing,
   * when `maxInFlight` checks are already running or waiting (or the pool is closed).
   */
  tryVerify(password: string, hash: string): Promise<boolean> | undefined {
    if (this.#closed || this.#inFlight >= this.#maxInFlight) return undefined;
    this.#inFlight++;
    return new Promise<boolean>((resolve, reject) => {
      const task: Task = { id: ++this.#nextId, password, hash, resolve, reject };
      const slot = this.#idleSlot();
      if (slot === undefined) this.#waiting.push(task);
      else this.#start(slot, task);
    });
  }

  /** Stops the threads; checks still waiting or running are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    const closed = new Error('the password verifier pool is closed');
    for (const task of this.#waiting.splice(0)) this.#settle(() => task.reject(closed));
    await Promise.all(
      this.#slots.splice(0).map((slot) => {
        const task = slot.task;
        if (task !== undefined) this.#settle(() => task.reject(closed));
        return slot.worker.terminate();
      }),
    );
  }

  #idleSlot(): Slot | undefined {
    const idle = this.#slots.find((s) => s.task === undefined);
    if (idle !== undefined || this.#slots.length >= this.#threads) return idle;
    return this.#spawn();
  }

  #spawn(): Slot {
    // None of the parent's flags: some (--input-type, the test runner's) keep a worker from starting.
    const worker = new Worker(WORKER_URL, { execArgv: [] });
    const slot: Slot = { worker, task: undefined };
    this.#slots.push(slot);
    worker.on('message', (res: VerifyResponse) => {
      const task = slot.task;
      if (task === undefined || task.id !== res.id) return;
      slot.task = undefined;
      this.#settle(() => task.resolve(res.ok));
      this.#next(slot);
    });
    const lost = (err: Error): void => {
      const i = this.#slots.indexOf(slot);
      if (i < 0) return; // already handled (error, then exit) or closed
      this.#slots.splice(i, 1);
      this.#log.error({ err }, 'a password verifier thread failed; it is replaced, and the check it was running is refused');
      const task = slot.task;
      if (task !== undefined) this.#settle(() => task.reject(err));
      const next = this.#waiting.shift();
      if (next !== undefined) this.#start(this.#spawn(), next);
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`verifier thread exited with code ${code}`)));
    return slot;
  }

  #start(slot: Slot, task: Task): void {
    slot.task = task;
    slot.worker.ref();
    slot.worker.postMessage({ id: task.id, password: task.password, hash: task.hash } satisfies VerifyRequest);
  }

  /** Gives a freed thread the next waiting check, or lets it stop holding the process open. */
  #next(slot: Slot): void {
    const task = this.#waiting.shift();
    if (task !== undefined) this.#start(slot, task);
    else slot.worker.unref();
  }

  /** Frees the check's place in the bound before its caller hears the answer. */
  #settle(settle: () => void): void {
    this.#inFlight--;
    settle();
  }
}
