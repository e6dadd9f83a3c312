/**
 * armhook's Azure side: the VM's instance metadata, its managed identity, the ARM clients and the
 * typed handlers under /azure/. Public surface of server/azure/.
 *
 * Readiness is armhook's own state, filled in by a background loop (metadata, then one token),
 * never by waiting on a token: once its IMDS host is overridden the identity library retries for
 * a long time off Azure, and /readyz and /azure/* must answer at once. On a VM that token is one
 * plain IMDS request: the identity library (~7 MB, a third of the start-up's JavaScript) loads
 * with the first typed handler, which then gets its own token from it.
 */
import type { Logger } from 'pino';
import type { TokenCredential } from '@azure/identity';
import { armScope, buildArmClients, type AzureClients, type RetryOptions } from './clients.ts';
import { HandlerError, type HandlerContext, type TypedHandler } from './handler.ts';
import type { AzureHandler } from './handlers/common.ts';
import { HANDLER_ROUTES, type HandlerRoute } from './handlers/routes.ts';
import { createCredential, describeCredentialError, identityFromToken, tokenProbeFor, type IdentityInfo, type TokenProbe } from './identity.ts';
import { MetadataError, readInstanceMetadata, requestImdsToken, type InstanceMetadata } from './metadata.ts';
import { toHandlerError } from './errors.ts';

export { HandlerError } from './handler.ts';
export type { HandlerContext, HandlerSink, TypedHandler } from './handler.ts';
export type { AzureClients, RetryOptions } from './clients.ts';
export { caCertificates } from './clients.ts';
export type { IdentityInfo, TokenProbe } from './identity.ts';
export type { InstanceMetadata } from './metadata.ts';
export type { HandlerRoute } from './handlers/routes.ts';

export interface AzureOptions {
  /** IMDS base URL (instance metadata and, through the identity library, tokens). */
  imdsEndpoint: string;
  /** Resource Manager base URL; the token scope is `${armEndpoint}/.default`. */
  armEndpoint: string;
  /** User-assigned identity's client id; absent = system-assigned. */
  managedIdentityClientId?: string;
  /** Extra CA (PEM) to trust for ARM (Azure Stack Hub, tests). */
  armCaCert?: string;
  /** Interval between LRO polls; default 5000 (ARM's Retry-After wins when it sends one). */
  pollIntervalMs?: number;
  /** Retries of 429/5xx by the SDK; defaults are the SDK's (3 retries, 1 s doubling). */
  retry?: RetryOptions;
  /** Start-up retry back-off: first delay (default 1000) and upper bound (default 60000). */
  startupRetry?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Timeout of one instance-metadata request; default 2000. */
  metadataTimeoutMs?: number;
  /**
   * How readiness gets its token; default from the environment (tokenProbeFor): a plain IMDS
   * request on a VM, the identity library where it would use another source (Arc, App Service…).
   */
  tokenProbe?: TokenProbe;
  /** Told of every token armhook fetched (not of cache hits): /metrics counts refreshes. */
  onTokenFetched?: (source: TokenProbe, outcome: 'ok' | 'error') => void;
  log: Logger;
}

/** One line of `armhook check`'s Azure section and whether that step passed. */
export interface CheckLine {
  ok: boolean;
  /** Not verified because an earlier step failed (not ok, and not a problem of its own). */
  skipped?: boolean;
  text: string;
}

export interface CheckResult {
  /** Every line ok. */
  ok: boolean;
  lines: CheckLine[];
}

export interface Readiness {
  ready: boolean;
  reasons: string[];
}

export interface AzureService {
  /** Starts reading instance metadata and fetching a token in the background (idempotent). */
  start(): void;
  /** From armhook's own state; never waits. */
  readiness(): Readiness;
  metadata(): InstanceMetadata | undefined;
  /** AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZURE_LOCATION for scripts; {} when unknown. */
  scriptEnv(): Record<string, string>;
  /** The identity from the latest token's claims, when a token has been obtained. */
  identity(): IdentityInfo | undefined;
  /**
   * The typed handlers, bound to this service: `run` checks readiness (503 HandlerError when not
   * ready) and supplies the ARM clients itself, so callers may pass any `clients` (ignored).
   */
  loadHandlers(): Promise<readonly TypedHandler[]>;
  /** Paths and methods of the handlers, known without loading them. */
  readonly routes: readonly HandlerRoute[];
  /** Throws HandlerError(503, 'azure_not_ready', …) naming what is missing. */
  requireReady(): void;
  /** The clients handlers get (built once, SDK loaded on first call). Requires readiness. */
  clients(): Promise<AzureClients>;
  /** Resolves when ready; rejects when `signal` aborts or the service is closed. */
  whenReady(signal?: AbortSignal): Promise<void>;
  /** Resolves when the first start-up attempt has finished, ready or not. */
  firstAttempt(): Promise<void>;
  /**
   * For `armhook check`: instance metadata, identity (principal id), ARM reachability, one line
   * each with its own verdict; `ok` is true when every line is.
   */
  check(): Promise<CheckResult>;
  /** Stops the background retries. */
  close(): void;
}

type Step<T> =
  | { state: 'pending' }
  | { state: 'running' }
  | { state: 'ok'; value: T }
  | { state: 'failed'; message: string; reachable?: boolean };

const DEFAULT_POLL_INTERVAL_MS = 5000;

export function createAzure(opts: AzureOptions): AzureService {
  const log = opts.log.child({ component: 'azure' });
  const imdsEndpoint = opts.imdsEndpoint.replace(/\/+$/, '');
  const armEndpoint = opts.armEndpoint.replace(/\/+$/, '');
  const scope = armScope(armEndpoint);
  const pollIntervalMs = opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const initialDelayMs = opts.startupRetry?.initialDelayMs ?? 1000;
  const maxDelayMs = opts.startupRetry?.maxDelayMs ?? 60_000;
  const tokenProbe = opts.tokenProbe ?? tokenProbeFor(process.env);
  const identityType: IdentityInfo['identityType'] = opts.managedIdentityClientId ? 'user-assigned' : 'system-assigned';

  let metadataStep: Step<InstanceMetadata> = { state: 'pending' };
  let tokenStep: Step<IdentityInfo> = { state: 'pending' };
  let started = false;
  let closed = false;
  let attempts = 0;
  let attemptRunning = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let lastLoggedProblem = '';
  const closing = new AbortController();
  let credentialPromise: Promise<TokenCredential> | undefined;
  let clientsPromise: Promise<AzureClients> | undefined;

  // Waiters (no polling): resolved by the attempt loop.
  let firstAttemptDone: () => void = () => {};
  const firstAttemptPromise = new Promise<void>((resolve) => {
    firstAttemptDone = resolve;
  });
  const readyWaiters = new Set<{ resolve: () => void; reject: (err: Error) => void }>();

  const fetched = opts.onTokenFetched ?? (() => undefined);
  const observer = {
    onToken(info: IdentityInfo): void {
      // The library answers from its cache too; a new expiry is a token it fetched.
      if (tokenStep.state !== 'ok' || tokenStep.value.expiresOn !== info.expiresOn) fetched('library', 'ok');
      tokenStep = { state: 'ok', value: info };
      notifyIfReady();
    },
    onError(message: string): void {
      fetched('library', 'error');
      tokenStep = { state: 'failed', message };
      // A refresh failed after start-up: retry in the background, so readiness comes back by itself.
      if (started && !attemptRunning) scheduleRetry();
    },
  };

  function credential(): Promise<TokenCredential> {
    credentialPromise ??= createCredential({
      imdsEndpoint,
      ...(opts.managedIdentityClientId ? { managedIdentityClientId: opts.managedIdentityClientId } : {}),
      observer,
    });
    return credentialPromise;
  }

  function isReady(): boolean {
    return !closed && metadataStep.state === 'ok' && tokenStep.state === 'ok';
  }

  function notifyIfReady(): void {
    if (!isReady()) return;
    for (const w of readyWaiters) w.resolve();
    readyWaiters.clear();
  }

  function reasons(): string[] {
    if (closed) return ['azure: service closed'];
    const out: string[] = [];
    switch (metadataStep.state) {
      case 'pending':
        out.push(started ? 'instance metadata: not read yet' : 'instance metadata: not read yet (Azure start-up not started)');
        break;
      case 'running':
        out.push(`instance metadata: first request to ${imdsEndpoint} still running`);
        break;
      case 'failed':
        out.push(metadataStep.message);
        break;
      case 'ok':
        break;
    }
    switch (tokenStep.state) {
      case 'pending':
        out.push(
          metadataStep.state === 'failed' && metadataStep.reachable === false
            ? 'managed identity token: not requested (instance metadata endpoint unreachable)'
            : 'managed identity token: not obtained yet',
        );
        break;
      case 'running':
        out.push(`managed identity token: request to ${imdsEndpoint} still running`);
        break;
      case 'failed':
        out.push(`managed identity token: ${tokenStep.message}`);
        break;
      case 'ok':
        break;
    }
    return out;
  }

  async function attempt(): Promise<void> {
    if (closed || attemptRunning) return;
    attemptRunning = true;
    attempts += 1;
    try {
      if (metadataStep.state !== 'ok') {
        if (metadataStep.state === 'pending') metadataStep = { state: 'running' };
        try {
          const value = await readInstanceMetadata(imdsEndpoint, {
            signal: closing.signal,
            ...(opts.metadataTimeoutMs ? { timeoutMs: opts.metadataTimeoutMs } : {}),
          });
          metadataStep = { state: 'ok', value };
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          metadataStep = { state: 'failed', message, reachable: err instanceof MetadataError ? err.reachable : false };
        }
      }
      if (closed) return;
      // Off Azure the token endpoint is as unreachable as the metadata one, and the identity
      // library would retry for minutes: only ask for a token once IMDS has answered.
      const imdsAnswered = metadataStep.state === 'ok' || (metadataStep.state === 'failed' && metadataStep.reachable === true);
      if (imdsAnswered && tokenStep.state !== 'ok') {
        if (tokenStep.state === 'pending') tokenStep = { state: 'running' };
        // Once the library is loaded (a typed handler ran), it is what handlers depend on: a
        // failure it reported is cleared only by the library getting a token again.
        if (tokenProbe === 'imds' && credentialPromise === undefined) {
          try {
            const token = await requestImdsToken(imdsEndpoint, {
              resource: armEndpoint,
              ...(opts.managedIdentityClientId ? { clientId: opts.managedIdentityClientId } : {}),
              signal: closing.signal,
            });
            tokenStep = { state: 'ok', value: identityFromToken(token, identityType) };
            fetched('imds', 'ok');
          } catch (err) {
            tokenStep = { state: 'failed', message: describeCredentialError(err) };
            fetched('imds', 'error');
          }
        } else {
          const before = tokenStep;
          try {
            const cred = await credential();
            await cred.getToken(scope); // the observer records the claims or the error
          } catch (err) {
            // The observer has recorded this attempt's error, unless it failed before asking
            // (the library did not load): then record it here, never keep an older one.
            if (tokenStep === before) tokenStep = { state: 'failed', message: describeCredentialError(err) };
          }
        }
      }
    } finally {
      attemptRunning = false;
      firstAttemptDone();
    }
    if (closed) return;
    if (isReady()) {
      const m = metadataStep.state === 'ok' ? metadataStep.value : undefined;
      const id = tokenStep.state === 'ok' ? tokenStep.value : undefined;
      log.info(
        { subscriptionId: m?.subscriptionId, resourceGroup: m?.resourceGroup, location: m?.location, vm: m?.vmName, principalId: id?.principalId },
        'azure: ready',
      );
      lastLoggedProblem = '';
      attempts = 0;
      notifyIfReady();
      return;
    }
    const problem = reasons().join('; ');
    if (problem !== lastLoggedProblem) {
      log.warn({ reasons: reasons() }, 'azure: not ready; retrying in the background');
      lastLoggedProblem = problem;
    }
    scheduleRetry();
  }

  function scheduleRetry(): void {
    if (closed || retryTimer) return;
    const delay = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.max(0, attempts - 1));
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void attempt();
    }, delay);
    retryTimer.unref();
  }

  async function getClients(): Promise<AzureClients> {
    clientsPromise ??= (async () => {
      if (metadataStep.state !== 'ok') throw notReady();
      const metadata = metadataStep.value;
      const cred = await credential();
      const built = await buildArmClients({
        credential: cred,
        armEndpoint,
        subscriptionId: metadata.subscriptionId,
        ...(opts.armCaCert ? { armCaCert: opts.armCaCert } : {}),
        ...(opts.retry ? { retry: opts.retry } : {}),
      });
      return {
        ...built,
        metadata,
        subscriptionId: metadata.subscriptionId,
        armEndpoint,
        pollIntervalMs,
        maxRetries: opts.retry?.maxRetries ?? 3,
        identity: () => (tokenStep.state === 'ok' ? tokenStep.value : undefined),
        currentIdentity: async () => {
          await cred.getToken(scope); // from the cache; the observer updates tokenStep
          if (tokenStep.state !== 'ok') throw notReady();
          return tokenStep.value;
        },
      };
    })();
    clientsPromise.catch(() => {
      clientsPromise = undefined;
    });
    return clientsPromise;
  }

  function notReady(): HandlerError {
    return new HandlerError(503, 'azure_not_ready', `Azure is not available to armhook yet: ${reasons().join('; ')}`);
  }

  function requireReady(): void {
    if (!isReady()) throw notReady();
  }

  // Loaded on first use: the handler modules bring TypeBox, which start-up doesn't need.
  let handlersPromise: Promise<readonly TypedHandler[]> | undefined;
  const loadHandlers = (): Promise<readonly TypedHandler[]> =>
    (handlersPromise ??= import('./handlers/index.ts').then(({ azureHandlers }) => azureHandlers.map(bindHandler)));
  const bindHandler = (def: AzureHandler): TypedHandler => ({
      path: def.path,
      method: def.method,
      description: def.description,
      params: def.params,
      // Pure: needs neither readiness nor clients, so a bad body is refused even while Azure is not ready.
      ...(def.validateBody ? { validateBody: (body: Buffer): void => def.validateBody?.(body) } : {}),
      async run(ctx: HandlerContext<unknown, unknown>): Promise<unknown> {
        requireReady();
        const clients = await getClients();
        return def.run({ ...ctx, params: ctx.params as never, clients });
      },
    });

  const service: AzureService = {
    start(): void {
      if (started || closed) return;
      started = true;
      void attempt();
    },
    readiness: () => ({ ready: isReady(), reasons: isReady() ? [] : reasons() }),
    metadata: () => (metadataStep.state === 'ok' ? metadataStep.value : undefined),
    scriptEnv(): Record<string, string> {
      if (metadataStep.state !== 'ok') return {};
      const m = metadataStep.value;
      return { AZURE_SUBSCRIPTION_ID: m.subscriptionId, AZURE_RESOURCE_GROUP: m.resourceGroup, AZURE_LOCATION: m.location };
    },
    identity: () => (tokenStep.state === 'ok' ? tokenStep.value : undefined),
    loadHandlers,
    routes: HANDLER_ROUTES,
    requireReady,
    async clients(): Promise<AzureClients> {
      requireReady();
      return getClients();
    },
    whenReady(signal?: AbortSignal): Promise<void> {
      if (isReady()) return Promise.resolve();
      if (closed) return Promise.reject(new Error('azure: service closed'));
      return new Promise<void>((resolve, reject) => {
        const waiter = {
          resolve: () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          },
          reject: (err: Error) => {
            signal?.removeEventListener('abort', onAbort);
            reject(err);
          },
        };
        const onAbort = (): void => {
          readyWaiters.delete(waiter);
          reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
        };
        if (signal?.aborted) return onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        readyWaiters.add(waiter);
      });
    },
    firstAttempt: () => firstAttemptPromise,
    async check(): Promise<CheckResult> {
      service.start();
      await firstAttemptPromise;
      const lines: CheckLine[] = [];
      const pass = (text: string): void => {
        lines.push({ ok: true, text });
      };
      const fail = (text: string): void => {
        lines.push({ ok: false, text });
      };
      const result = (): CheckResult => ({ ok: lines.every((l) => l.ok), lines });
      if (metadataStep.state === 'ok') {
        const m = metadataStep.value;
        pass(`instance metadata (${imdsEndpoint}): subscription ${m.subscriptionId}, resource group ${m.resourceGroup}, location ${m.location}, VM ${m.vmName}`);
      } else {
        const why = reasons().filter((r) => r.startsWith('instance metadata'));
        for (const r of why.length > 0 ? why : ['instance metadata: not read']) fail(r);
      }
      if (tokenStep.state === 'ok') {
        const id = tokenStep.value;
        pass(
          `managed identity (${id.identityType}): token obtained for ${scope}; principal id ${id.principalId ?? 'unknown'}, tenant ${id.tenantId ?? 'unknown'}, client id ${id.clientId ?? 'unknown'}`,
        );
      } else {
        const why = reasons().filter((r) => r.startsWith('managed identity'));
        for (const r of why.length > 0 ? why : ['managed identity token: not obtained']) fail(r);
      }
      if (!isReady()) {
        // Unverified, so not ok; the failing step above is the one to fix.
        lines.push({ ok: false, skipped: true, text: `Resource Manager (${armEndpoint}): not checked (identity or metadata missing)` });
        return result();
      }
      try {
        const c = await getClients();
        let seen = 0;
        for await (const _group of c.resources.resourceGroups.list({ top: 1, abortSignal: AbortSignal.timeout(30_000) })) {
          seen += 1;
          break;
        }
        pass(`Resource Manager (${armEndpoint}): reachable; subscription ${c.subscriptionId} readable (${seen ? 'listed a resource group' : 'no resource groups'})`);
      } catch (err) {
        const m = metadataStep.state === 'ok' ? metadataStep.value : undefined;
        const mapped = toHandlerError(err, {
          what: 'list resource groups',
          resource: `subscription ${m?.subscriptionId ?? '?'}`,
          scope: `/subscriptions/${m?.subscriptionId ?? '?'}`,
          role: 'Reader',
          principalId: tokenStep.state === 'ok' ? tokenStep.value.principalId : undefined,
          maxRetries: opts.retry?.maxRetries ?? 3,
        });
        fail(`Resource Manager (${armEndpoint}): ${mapped.message}`);
      }
      return result();
    },
    close(): void {
      if (closed) return;
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = undefined;
      closing.abort();
      for (const w of readyWaiters) w.reject(new Error('azure: service closed'));
      readyWaiters.clear();
      firstAttemptDone();
    },
  };
  return service;
}
