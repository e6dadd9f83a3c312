/**
 * The process's Azure session: one credential and one set of ARM clients, each built on first use
 * and then shared. The identity library loads with the credential (the first typed handler);
 * every token it gets or fails to get is reported to readiness.
 */
import type { TokenCredential } from '@azure/identity';
import { AppError } from '../errors.ts';
import { armScope, buildArmClients, type AzureClients, type RetryOptions } from './clients.ts';
import { createCredential, type IdentityInfo, type TokenProbe } from './identity.ts';
import type { Readiness } from './readiness.ts';

export interface SessionOptions {
  imdsEndpoint: string;
  armEndpoint: string;
  managedIdentityClientId?: string;
  armCaCert?: string;
  pollIntervalMs: number;
  retry?: RetryOptions;
  readiness: Readiness;
  onTokenFetched: TokenFetched;
}

/** Told of each token fetched (not of answers from the cache), by where it came from. */
export type TokenFetched = (source: TokenProbe, outcome: 'ok' | 'error') => void;

/** The SDK's default number of retries of 429/5xx. */
const SDK_MAX_RETRIES = 3;

/** Not ready: 503 naming what is missing; the caller may retry later. */
export function notReadyError(readiness: Readiness): AppError {
  const reasons = readiness.problems().map((p) => p.text);
  return new AppError(503, 'azure_not_ready', `Azure is not available to armhook yet: ${reasons.join('; ')}`, undefined, { retryAfterSeconds: 30 });
}

export class AzureSession {
  readonly #opts: SessionOptions;
  readonly scope: string;
  #credential: Promise<TokenCredential> | undefined;
  #clients: Promise<AzureClients> | undefined;

  constructor(opts: SessionOptions) {
    this.#opts = opts;
    this.scope = armScope(opts.armEndpoint);
  }

  get maxRetries(): number {
    return this.#opts.retry?.maxRetries ?? SDK_MAX_RETRIES;
  }

  /** Whether the identity library has been loaded (then it, not a plain request, is what counts). */
  get libraryLoaded(): boolean {
    return this.#credential !== undefined;
  }

  credential(): Promise<TokenCredential> {
    const readiness = this.#opts.readiness;
    this.#credential ??= createCredential({
      imdsEndpoint: this.#opts.imdsEndpoint,
      ...(this.#opts.managedIdentityClientId ? { managedIdentityClientId: this.#opts.managedIdentityClientId } : {}),
      observer: {
        onToken: (info) => {
          // The library answers from its cache too; a new expiry is a token it fetched.
          const before = readiness.identity();
          if (!before || before.expiresOn !== info.expiresOn) this.#opts.onTokenFetched('library', 'ok');
          readiness.recordToken(info);
        },
        onError: (message) => {
          this.#opts.onTokenFetched('library', 'error');
          readiness.recordTokenError(message);
        },
      },
    });
    return this.#credential;
  }

  /** One token through the library; its observer records the outcome in readiness. */
  async libraryToken(): Promise<undefined> {
    await (await this.credential()).getToken(this.scope);
    return undefined;
  }

  /** The clients handlers get, built once (SDK loaded on first call); needs instance metadata. */
  clients(): Promise<AzureClients> {
    this.#clients ??= this.#build();
    this.#clients.catch(() => {
      this.#clients = undefined;
    });
    return this.#clients;
  }

  async #build(): Promise<AzureClients> {
    const { readiness, armEndpoint } = this.#opts;
    const metadata = readiness.metadata();
    if (!metadata) throw notReadyError(readiness);
    const credential = await this.credential();
    const built = await buildArmClients({
      credential,
      armEndpoint,
      subscriptionId: metadata.subscriptionId,
      ...(this.#opts.armCaCert ? { armCaCert: this.#opts.armCaCert } : {}),
      ...(this.#opts.retry ? { retry: this.#opts.retry } : {}),
    });
    return {
      ...built,
      metadata,
      subscriptionId: metadata.subscriptionId,
      armEndpoint,
      pollIntervalMs: this.#opts.pollIntervalMs,
      maxRetries: this.maxRetries,
      identity: () => readiness.identity(),
      currentIdentity: async (): Promise<IdentityInfo> => {
        await credential.getToken(this.scope); // from the cache; the observer updates readiness
        const identity = readiness.identity();
        if (!identity) throw notReadyError(readiness);
        return identity;
      },
    };
  }
}
