/**
 * Whether armhook can act in Azure: two steps (instance metadata, then one token), tried by a
 * background loop with exponential back-off, never by waiting on a token: off Azure the identity
 * library retries for a long time, and /readyz and /azure/* must answer at once.
 *
 * What is missing is data (`Problem`: which step, and the sentence for a person), so /readyz, the
 * not-ready error and `armhook check` read the same facts without parsing each other's text.
 */
import type { Logger } from 'pino';
import type { IdentityInfo } from './identity.ts';
import { MetadataError, readInstanceMetadata, type InstanceMetadata } from './metadata.ts';

type Step<T> = { state: 'pending' } | { state: 'running' } | { state: 'ok'; value: T } | { state: 'failed'; message: string; reachable?: boolean };

export type ReadinessStep = 'metadata' | 'token' | 'service';

/** One thing readiness still lacks. */
export interface Problem {
  step: ReadinessStep;
  text: string;
}

/**
 * Gets one token for readiness. Resolves with the identity it names, or with nothing when the
 * outcome was reported through `Readiness.recordToken/recordTokenError` (the identity library's
 * observer). Throws when no token was obtained.
 */
export type TokenAttempt = (signal: AbortSignal) => Promise<IdentityInfo | undefined>;

export interface ReadinessOptions {
  imdsEndpoint: string;
  /** Timeout of one instance-metadata request. */
  metadataTimeoutMs?: number;
  /** First back-off delay (default 1000) and its upper bound (default 60000). */
  startupRetry?: { initialDelayMs?: number; maxDelayMs?: number };
  tokenAttempt: TokenAttempt;
  /** The message a failed token attempt records (the identity library's errors are verbose). */
  describeTokenError(err: unknown): string;
  log: Logger;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

const CLOSED = 'azure: service closed';

export class Readiness {
  readonly #opts: ReadinessOptions;
  readonly #closing = new AbortController();
  readonly #waiters = new Set<Waiter>();
  readonly #firstAttempt: Promise<void>;
  #firstAttemptDone: () => void = () => {};
  #metadata: Step<InstanceMetadata> = { state: 'pending' };
  #token: Step<IdentityInfo> = { state: 'pending' };
  #started = false;
  #closed = false;
  #attempts = 0;
  #attemptRunning = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #lastLoggedProblem = '';

  constructor(opts: ReadinessOptions) {
    this.#opts = opts;
    this.#firstAttempt = new Promise<void>((resolve) => {
      this.#firstAttemptDone = resolve;
    });
  }

  /** Starts the background attempts (idempotent). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    void this.#attempt();
  }

  get ready(): boolean {
    return !this.#closed && this.#metadata.state === 'ok' && this.#token.state === 'ok';
  }

  get started(): boolean {
    return this.#started;
  }

  metadata(): InstanceMetadata | undefined {
    return this.#metadata.state === 'ok' ? this.#metadata.value : undefined;
  }

  identity(): IdentityInfo | undefined {
    return this.#token.state === 'ok' ? this.#token.value : undefined;
  }

  /** A token was obtained (by the probe or by the identity library for a handler). */
  recordToken(info: IdentityInfo): void {
    this.#token = { state: 'ok', value: info };
    this.#notifyIfReady();
  }

  /** A token request failed; after start-up the loop retries, so readiness comes back by itself. */
  recordTokenError(message: string): void {
    this.#token = { state: 'failed', message };
    if (this.#started && !this.#attemptRunning) this.#scheduleRetry();
  }

  /** What is missing, step by step; empty when ready. */
  problems(): Problem[] {
    if (this.#closed) return [{ step: 'service', text: CLOSED }];
    return [...this.#metadataProblems(), ...this.#tokenProblems()];
  }

  /** Resolves when ready; rejects when `signal` aborts or readiness is closed. */
  whenReady(signal?: AbortSignal): Promise<void> {
    if (this.ready) return Promise.resolve();
    if (this.#closed) return Promise.reject(new Error(CLOSED));
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters.delete(waiter);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      const settle = (then: () => void): void => {
        signal?.removeEventListener('abort', onAbort);
        then();
      };
      const waiter: Waiter = { resolve: () => settle(resolve), reject: (err) => settle(() => reject(err)) };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Resolves when the first attempt has finished, ready or not (or readiness closed). */
  firstAttempt(): Promise<void> {
    return this.#firstAttempt;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#closing.abort();
    for (const w of this.#waiters) w.reject(new Error(CLOSED));
    this.#waiters.clear();
    this.#firstAttemptDone();
  }

  #metadataProblems(): Problem[] {
    const imds = this.#opts.imdsEndpoint;
    const m = this.#metadata;
    const problem = (text: string): Problem[] => [{ step: 'metadata', text }];
    switch (m.state) {
      case 'pending':
        return problem(this.#started ? 'instance metadata: not read yet' : 'instance metadata: not read yet (Azure start-up not started)');
      case 'running':
        return problem(`instance metadata: first request to ${imds} still running`);
      case 'failed':
        return problem(m.message);
      case 'ok':
        return [];
    }
  }

  #tokenProblems(): Problem[] {
    const t = this.#token;
    const problem = (text: string): Problem[] => [{ step: 'token', text }];
    switch (t.state) {
      case 'pending':
        return problem(
          this.#metadata.state === 'failed' && this.#metadata.reachable === false
            ? 'managed identity token: not requested (instance metadata endpoint unreachable)'
            : 'managed identity token: not obtained yet',
        );
      case 'running':
        return problem(`managed identity token: request to ${this.#opts.imdsEndpoint} still running`);
      case 'failed':
        return problem(`managed identity token: ${t.message}`);
      case 'ok':
        return [];
    }
  }

  async #attempt(): Promise<void> {
    if (this.#closed || this.#attemptRunning) return;
    this.#attemptRunning = true;
    this.#attempts += 1;
    try {
      if (this.#metadata.state !== 'ok') await this.#readMetadata();
      // Off Azure the token endpoint is as unreachable as the metadata one, and the identity
      // library would retry for minutes: only ask for a token once IMDS has answered.
      const m = this.#metadata;
      const imdsAnswered = m.state === 'ok' || (m.state === 'failed' && m.reachable === true);
      if (!this.#closed && imdsAnswered && this.#token.state !== 'ok') await this.#getToken();
    } finally {
      this.#attemptRunning = false;
      this.#firstAttemptDone();
    }
    if (this.#closed) return;
    if (this.ready) this.#becameReady();
    else this.#stillNotReady();
  }

  async #readMetadata(): Promise<void> {
    if (this.#metadata.state === 'pending') this.#metadata = { state: 'running' };
    try {
      const value = await readInstanceMetadata(this.#opts.imdsEndpoint, {
        signal: this.#closing.signal,
        ...(this.#opts.metadataTimeoutMs ? { timeoutMs: this.#opts.metadataTimeoutMs } : {}),
      });
      this.#metadata = { state: 'ok', value };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#metadata = { state: 'failed', message, reachable: err instanceof MetadataError ? err.reachable : false };
    }
  }

  async #getToken(): Promise<void> {
    if (this.#token.state === 'pending') this.#token = { state: 'running' };
    const before = this.#token;
    try {
      const identity = await this.#opts.tokenAttempt(this.#closing.signal);
      if (identity) this.#token = { state: 'ok', value: identity };
    } catch (err) {
      // The library's observer may have recorded this attempt's error already; never keep an older one.
      if (this.#token === before) this.#token = { state: 'failed', message: this.#opts.describeTokenError(err) };
    }
  }

  #becameReady(): void {
    const m = this.metadata();
    const id = this.identity();
    this.#opts.log.info(
      { subscriptionId: m?.subscriptionId, resourceGroup: m?.resourceGroup, location: m?.location, vm: m?.vmName, principalId: id?.principalId },
      'azure: ready',
    );
    this.#lastLoggedProblem = '';
    this.#attempts = 0;
    this.#notifyIfReady();
  }

  #stillNotReady(): void {
    const reasons = this.problems().map((p) => p.text);
    const problem = reasons.join('; ');
    if (problem !== this.#lastLoggedProblem) {
      this.#opts.log.warn({ reasons }, 'azure: not ready; retrying in the background');
      this.#lastLoggedProblem = problem;
    }
    this.#scheduleRetry();
  }

  #notifyIfReady(): void {
    if (!this.ready) return;
    for (const w of this.#waiters) w.resolve();
    this.#waiters.clear();
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer) return;
    const initial = this.#opts.startupRetry?.initialDelayMs ?? 1000;
    const max = this.#opts.startupRetry?.maxDelayMs ?? 60_000;
    const delay = Math.min(max, initial * 2 ** Math.max(0, this.#attempts - 1));
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#attempt();
    }, delay);
    this.#retryTimer.unref();
  }
}
