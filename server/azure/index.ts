/**
 * armhook's Azure side: the VM's instance metadata, its managed identity, the ARM clients and the
 * typed handlers under /azure/. Public surface of server/azure/, composed from its parts:
 * readiness (is Azure usable, and why not), session (credential and clients, built once),
 * registry (the handler table) and check (`armhook check`'s lines).
 *
 * On a VM, readiness's token is one plain IMDS request: the identity library (~7 MB, a third of
 * the start-up's JavaScript) loads with the first typed handler, which then gets its own token.
 */
import type { Logger } from 'pino';
import type { RetryOptions } from './clients.ts';
import { checkAzure, type CheckResult } from './check.ts';
import type { HandlerContext, TypedHandler } from './handler.ts';
import { describeCredentialError, identityFromToken, tokenProbeFor, type IdentityInfo, type TokenProbe } from './identity.ts';
import { requestImdsToken, type InstanceMetadata } from './metadata.ts';
import { Readiness, type TokenAttempt } from './readiness.ts';
import { HANDLERS, type HandlerRow } from './registry.ts';
import { AzureSession, notReadyError, type TokenFetched } from './session.ts';

export type { BodyUse, HandlerContext, HandlerSink, TypedHandler } from './handler.ts';
export type { AzureClients, RetryOptions } from './clients.ts';
export { caCertificates, readArmCaFile } from './clients.ts';
export type { CheckLine, CheckResult } from './check.ts';
export type { IdentityInfo, TokenProbe } from './identity.ts';
export { getAccessToken, type ScriptToken, type TokenRequest } from './token.ts';
export type { InstanceMetadata } from './metadata.ts';
export type { HandlerRow } from './registry.ts';

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
  onTokenFetched?: TokenFetched;
  log: Logger;
}

export interface AzureService {
  /** Starts reading instance metadata and fetching a token in the background (idempotent). */
  start(): void;
  /** From armhook's own state; never waits. */
  readiness(): { ready: boolean; reasons: string[] };
  metadata(): InstanceMetadata | undefined;
  /** AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZURE_LOCATION for scripts (once known); AZURE_CLIENT_ID for a user-assigned identity. */
  scriptEnv(): Record<string, string>;
  /** The identity from the latest token's claims, when a token has been obtained. */
  identity(): IdentityInfo | undefined;
  /** The handler table's rows: routes are registered from them without loading any handler. */
  readonly routes: readonly HandlerRow[];
  /** Every typed handler, loaded and bound to this service (readiness checked, clients supplied). */
  loadHandlers(): Promise<readonly TypedHandler[]>;
  /** Throws AppError(503, 'azure_not_ready', …) naming what is missing. */
  requireReady(): void;
  /** The clients handlers get (built once, SDK loaded on first call). Requires readiness. */
  clients(): ReturnType<AzureSession['clients']>;
  /** Resolves when ready; rejects when `signal` aborts or the service is closed. */
  whenReady(signal?: AbortSignal): Promise<void>;
  /** Resolves when the first start-up attempt has finished, ready or not. */
  firstAttempt(): Promise<void>;
  /** For `armhook check`: metadata, identity, ARM reachability, one line each with its own verdict. */
  check(): Promise<CheckResult>;
  /** Stops the background retries. */
  close(): void;
}

const DEFAULT_POLL_INTERVAL_MS = 5000;

export function createAzure(opts: AzureOptions): AzureService {
  const imdsEndpoint = opts.imdsEndpoint.replace(/\/+$/, '');
  const armEndpoint = opts.armEndpoint.replace(/\/+$/, '');
  const clientId = opts.managedIdentityClientId;
  const probe = opts.tokenProbe ?? tokenProbeFor(process.env);
  // Readiness asks the library once a handler has loaded it: what handlers depend on is then the
  // library's token, and a failure it reported is cleared only by the library getting one.
  const fetched: TokenFetched = opts.onTokenFetched ?? (() => undefined);
  const tokenAttempt: TokenAttempt = async (signal) => {
    if (probe === 'library' || session.libraryLoaded) return session.libraryToken();
    try {
      const token = await requestImdsToken(imdsEndpoint, { resource: armEndpoint, ...(clientId ? { clientId } : {}), signal });
      fetched('imds', 'ok');
      return identityFromToken(token, clientId ? 'user-assigned' : 'system-assigned');
    } catch (err) {
      fetched('imds', 'error');
      throw err;
    }
  };
  const readiness = new Readiness({
    imdsEndpoint,
    tokenAttempt,
    describeTokenError: describeCredentialError,
    log: opts.log.child({ component: 'azure' }),
    ...(opts.metadataTimeoutMs ? { metadataTimeoutMs: opts.metadataTimeoutMs } : {}),
    ...(opts.startupRetry ? { startupRetry: opts.startupRetry } : {}),
  });
  const session = new AzureSession({
    imdsEndpoint,
    armEndpoint,
    pollIntervalMs: opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
    readiness,
    onTokenFetched: fetched,
    ...(clientId ? { managedIdentityClientId: clientId } : {}),
    ...(opts.armCaCert ? { armCaCert: opts.armCaCert } : {}),
    ...(opts.retry ? { retry: opts.retry } : {}),
  });
  const requireReady = (): void => {
    if (!readiness.ready) throw notReadyError(readiness);
  };
  // Loaded on first use: the handler modules bring TypeBox, which start-up doesn't need.
  let handlers: Promise<readonly TypedHandler[]> | undefined;

  return {
    start: () => readiness.start(),
    readiness: () => ({ ready: readiness.ready, reasons: readiness.problems().map((p) => p.text) }),
    metadata: () => readiness.metadata(),
    scriptEnv(): Record<string, string> {
      const m = readiness.metadata();
      return {
        ...(m ? { AZURE_SUBSCRIPTION_ID: m.subscriptionId, AZURE_RESOURCE_GROUP: m.resourceGroup, AZURE_LOCATION: m.location } : {}),
        // The variable az, the SDKs and `armhook token` read for a user-assigned identity.
        ...(opts.managedIdentityClientId ? { AZURE_CLIENT_ID: opts.managedIdentityClientId } : {}),
      };
    },
    identity: () => readiness.identity(),
    routes: HANDLERS,
    loadHandlers: () => (handlers ??= Promise.all(HANDLERS.map((row) => bindHandler(row, requireReady, session)))),
    requireReady,
    async clients() {
      requireReady();
      return session.clients();
    },
    whenReady: (signal) => readiness.whenReady(signal),
    firstAttempt: () => readiness.firstAttempt(),
    check: () => checkAzure({ readiness, session, imdsEndpoint, armEndpoint }),
    close: () => readiness.close(),
  };
}

/** A registry row with its module loaded, bound to the service: readiness checked and clients supplied on each run. */
async function bindHandler(row: HandlerRow, requireReady: () => void, session: AzureSession): Promise<TypedHandler> {
  const def = await row.load();
  return {
    ...row,
    description: def.description,
    params: def.params,
    // Pure: needs neither readiness nor clients, so a bad body is refused even while Azure is not ready.
    ...(def.validateBody ? { validateBody: (body: Buffer): void => def.validateBody?.(body) } : {}),
    async run(ctx: HandlerContext<unknown, unknown>): Promise<unknown> {
      requireReady();
      return def.run({ ...ctx, clients: await session.clients() });
    },
  };
}
