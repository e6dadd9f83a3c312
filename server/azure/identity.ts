/**
 * The process's managed identity: one ManagedIdentityCredential, wrapped so that concurrent
 * callers share one in-flight token request and armhook learns the identity's claims (principal
 * id, tenant, client id) without ever logging or keeping the token itself.
 *
 * Caching and refresh stay with the library: @azure/msal-node keeps managed-identity tokens in a
 * process-wide cache (ManagedIdentityApplication.nodeStorage, a static), and each SDK client's
 * bearer policy keeps the token it got until 2 minutes before expiry. The wrapper only removes
 * the window in which several clients ask at once before the first answer is cached.
 */
import { existsSync } from 'node:fs';
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';

/** What the token says about the identity (decoded locally, never logged with the token). */
export interface IdentityInfo {
  /** The service principal's object id (`oid`): what role assignments name. */
  principalId?: string;
  /** Entra tenant (`tid`). */
  tenantId?: string;
  /** Client (application) id of the identity (`appid` / `azp`). */
  clientId?: string;
  /** Resource id of the identity (`xms_mirid`): the VM for system-assigned, the identity resource for user-assigned. */
  managedIdentityResourceId?: string;
  identityType: 'system-assigned' | 'user-assigned';
  /** When the current token expires (ISO 8601). */
  expiresOn?: string;
}

export interface TokenObserver {
  onToken(info: IdentityInfo): void;
  onError(message: string): void;
}

export interface CredentialOptions {
  /** Base URL of IMDS (tokens come from `${imdsEndpoint}/metadata/identity/oauth2/token`). */
  imdsEndpoint: string;
  /** User-assigned identity; absent = system-assigned. */
  managedIdentityClientId?: string;
  observer: TokenObserver;
}

/**
 * Points the identity library at `imdsEndpoint` and builds the credential. The library reads
 * AZURE_POD_IDENTITY_AUTHORITY_HOST once, when it sends its first token request, and then keeps
 * that host for the life of the process; this must therefore run before any token request.
 */
export async function createCredential(options: CredentialOptions): Promise<TokenCredential> {
  process.env['AZURE_POD_IDENTITY_AUTHORITY_HOST'] = options.imdsEndpoint.replace(/\/+$/, '');
  const { ManagedIdentityCredential } = await import('@azure/identity');
  const clientId = options.managedIdentityClientId;
  const inner = new ManagedIdentityCredential(clientId ? { clientId } : {});
  return new SharedTokenCredential(inner, clientId ? 'user-assigned' : 'system-assigned', options.observer);
}

/**
 * Where a token comes from when readiness is probed: `imds` = one plain request to IMDS (what the
 * library would send on a VM, without loading its ~7 MB); `library` = through the credential.
 */
export type TokenProbe = 'imds' | 'library';

/** The Azure Arc agent's binary: MSAL picks Arc when it exists, even without Arc's variables. */
export const ARC_AGENT_BINARY = '/opt/azcmagent/bin/himds';

/**
 * Whether ManagedIdentityCredential would ask IMDS for tokens here. The identity library (MSAL)
 * picks another source when one announces itself: App Service and Service Fabric (IDENTITY_ENDPOINT),
 * Cloud Shell and Azure ML (MSI_ENDPOINT), Azure Arc (IDENTITY_ENDPOINT + IMDS_ENDPOINT, or the
 * agent's binary), AKS workload identity (AZURE_FEDERATED_TOKEN_FILE). Any of these → 'library', so
 * the probe always asks where the handlers' tokens will come from.
 */
export function tokenProbeFor(env: NodeJS.ProcessEnv, fileExists: (path: string) => boolean = existsSync): TokenProbe {
  const announced = ['IDENTITY_ENDPOINT', 'MSI_ENDPOINT', 'IMDS_ENDPOINT', 'AZURE_FEDERATED_TOKEN_FILE'].some((name) => Boolean(env[name]));
  return announced || fileExists(ARC_AGENT_BINARY) ? 'library' : 'imds';
}

/** Single-flight wrapper: one token request at a time per scope set; every outcome is reported to the observer. */
class SharedTokenCredential implements TokenCredential {
  readonly #inner: TokenCredential;
  readonly #type: IdentityInfo['identityType'];
  readonly #observer: TokenObserver;
  readonly #inflight = new Map<string, Promise<AccessToken>>();

  constructor(inner: TokenCredential, type: IdentityInfo['identityType'], observer: TokenObserver) {
    this.#inner = inner;
    this.#type = type;
    this.#observer = observer;
  }

  getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
    const list = Array.isArray(scopes) ? scopes : [scopes];
    const key = `${list.join(' ')}\n${options?.claims ?? ''}\n${options?.tenantId ?? ''}`;
    const running = this.#inflight.get(key);
    if (running) return running;
    // The shared request is not tied to one caller's abort signal: another caller may still want it.
    const shared: GetTokenOptions = {};
    if (options?.claims) shared.claims = options.claims;
    if (options?.tenantId) shared.tenantId = options.tenantId;
    const request = this.#inner
      .getToken(list, shared)
      .then((token) => {
        if (!token) throw new Error('the identity library returned no token');
        this.#observer.onToken(identityFromToken(token, this.#type));
        return token;
      })
      .catch((err: unknown) => {
        this.#observer.onError(describeCredentialError(err));
        throw err;
      });
    const tracked = request.finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, tracked);
    return tracked;
  }
}

export function identityFromToken(token: AccessToken, fallbackType: IdentityInfo['identityType']): IdentityInfo {
  const claims = decodeJwtPayload(token.token);
  const str = (name: string): string | undefined => {
    const value = claims?.[name];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const mirid = str('xms_mirid');
  const info: IdentityInfo = {
    identityType: mirid
      ? /\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\//i.test(mirid)
        ? 'user-assigned'
        : 'system-assigned'
      : fallbackType,
  };
  const principalId = str('oid');
  const tenantId = str('tid');
  const clientId = str('appid') ?? str('azp');
  if (principalId) info.principalId = principalId;
  if (tenantId) info.tenantId = tenantId;
  if (clientId) info.clientId = clientId;
  if (mirid) info.managedIdentityResourceId = mirid;
  if (Number.isFinite(token.expiresOnTimestamp)) info.expiresOn = new Date(token.expiresOnTimestamp).toISOString();
  return info;
}

/** The payload of a JWT, or undefined when the token is not JWT-shaped. No signature check: for display only. */
export function decodeJwtPayload(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One line for an operator from the library's error. The identity library's messages are long
 * and repeat themselves ("ManagedIdentityCredential: Authentication failed. Message …"); keep the
 * useful tail and drop links to troubleshooting pages that are about other credential types.
 */
export function describeCredentialError(err: unknown): string {
  const raw = err instanceof Error ? err.message : String(err);
  let message = raw
    .replace(/^ManagedIdentityCredential:\s*/, '')
    .replace(/\s+/g, ' ')
    .trim();
  // MSAL: "Authentication failed. Message <code>: Error(s): … - Description: <text> - Correlation ID: …"
  const msal = /Message ([\w.-]+): Error\(s\):.*?Description: (.*?) - Correlation ID/.exec(message);
  if (msal) message = `the token endpoint refused: ${msal[1]}${msal[2] && msal[2] !== 'Not Available' ? ` (${msal[2]})` : ''}`;
  message = message.replace(/\s*To troubleshoot, visit https:\/\/\S+\.?/g, '').replace(/\s*Headers: \{.*?\}(?=\)|$)/, '');
  return message.length > 400 ? `${message.slice(0, 400)}…` : message;
}
