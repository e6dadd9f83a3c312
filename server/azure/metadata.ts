/**
 * Azure Instance Metadata Service (IMDS) client: the VM's subscription, resource group, location
 * and name, and the readiness probe's managed-identity token. One GET over node:http(s) with a
 * short timeout: off Azure the link-local address usually drops packets, so a request without a
 * timeout would hang for minutes. (Not `fetch`: loading undici for this one request adds start-up
 * time and memory that armhook never uses again — the Azure SDK has its own HTTP client.)
 */
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

// getBuiltinModule, not `import … from 'node:http'`: an ES import of node:http builds its export
// facade, whose lazy WebSocket/EventSource getters load undici anyway.
const { request: httpRequest } = process.getBuiltinModule('node:http');

export interface InstanceMetadata {
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  vmName: string;
  vmId?: string;
  /** e.g. AzurePublicCloud, AzureUSGovernmentCloud (informational). */
  azEnvironment?: string;
}

export const METADATA_API_VERSION = '2021-02-01';
export const METADATA_TIMEOUT_MS = 2000;

/** Why a metadata read failed, phrased for an operator. `reachable` = the endpoint answered at all. */
export class MetadataError extends Error {
  readonly reachable: boolean;
  constructor(message: string, reachable: boolean) {
    super(message);
    this.name = 'MetadataError';
    this.reachable = reachable;
  }
}

export function metadataUrl(imdsEndpoint: string): string {
  return `${imdsEndpoint.replace(/\/+$/, '')}/metadata/instance?api-version=${METADATA_API_VERSION}`;
}

/** Reads /metadata/instance once. Throws MetadataError with an operator-readable message. */
export async function readInstanceMetadata(imdsEndpoint: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<InstanceMetadata> {
  const url = metadataUrl(imdsEndpoint);
  const base = imdsEndpoint.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? METADATA_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  let response: { status: number; text: string };
  try {
    response = await getText(url, signal);
  } catch (err) {
    const reachable = err instanceof ReadError;
    const reason = timeout.aborted ? `no answer within ${timeoutMs / 1000} s` : describeError(err);
    throw new MetadataError(
      reachable
        ? `instance metadata at ${base}: reading the answer failed: ${reason}`
        : `instance metadata unreachable at ${base}: ${reason} — is this an Azure VM?`,
      reachable,
    );
  }
  const text = response.text;
  if (response.status < 200 || response.status > 299) {
    throw new MetadataError(`instance metadata at ${base} answered HTTP ${response.status}: ${snippet(text)}`, true);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new MetadataError(`instance metadata at ${base} answered something that is not JSON: ${snippet(text)}`, true);
  }
  return parseInstanceMetadata(body, base);
}

export function parseInstanceMetadata(body: unknown, source: string): InstanceMetadata {
  const compute = isRecord(body) && isRecord(body['compute']) ? body['compute'] : undefined;
  if (!compute) throw new MetadataError(`instance metadata at ${source} has no "compute" section`, true);
  const field = (name: string): string | undefined => {
    const value = compute[name];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const subscriptionId = field('subscriptionId');
  const resourceGroup = field('resourceGroupName');
  const location = field('location');
  const vmName = field('name');
  const missing = [
    subscriptionId ? undefined : 'subscriptionId',
    resourceGroup ? undefined : 'resourceGroupName',
    location ? undefined : 'location',
    vmName ? undefined : 'name',
  ].filter((x): x is string => x !== undefined);
  if (!subscriptionId || !resourceGroup || !location || !vmName) {
    throw new MetadataError(`instance metadata at ${source} lacks compute.${missing.join(', compute.')}`, true);
  }
  const result: InstanceMetadata = { subscriptionId, resourceGroup, location, vmName };
  const vmId = field('vmId');
  if (vmId) result.vmId = vmId;
  const azEnvironment = field('azEnvironment');
  if (azEnvironment) result.azEnvironment = azEnvironment;
  return result;
}

export const TOKEN_API_VERSION = '2018-02-01';
export const TOKEN_TIMEOUT_MS = 10_000;

/** A token from IMDS, in the identity library's AccessToken shape (so claims decode the same way). */
export interface ImdsToken {
  token: string;
  expiresOnTimestamp: number;
}

/**
 * Asks IMDS for one managed-identity token for `resource`: the request the identity library
 * itself sends on a VM (same path, api-version and parameters), without loading the library.
 * Used by the readiness probe only: handlers get their tokens (cached, refreshed) from the
 * library. Throws Error with an operator-readable message.
 */
export async function requestImdsToken(
  imdsEndpoint: string,
  options: { resource: string; clientId?: string; timeoutMs?: number; signal?: AbortSignal },
): Promise<ImdsToken> {
  const base = imdsEndpoint.replace(/\/+$/, '');
  const query = new URLSearchParams({ 'api-version': TOKEN_API_VERSION, resource: options.resource });
  if (options.clientId) query.set('client_id', options.clientId);
  const timeoutMs = options.timeoutMs ?? TOKEN_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  let response: { status: number; text: string };
  try {
    response = await getText(`${base}/metadata/identity/oauth2/token?${query.toString()}`, signal);
  } catch (err) {
    const reason = timeout.aborted ? `no answer within ${timeoutMs / 1000} s` : describeError(err);
    throw new Error(err instanceof ReadError ? `reading the token endpoint's answer failed: ${reason}` : `token endpoint unreachable at ${base}: ${reason}`, {
      cause: err,
    });
  }
  let body: unknown;
  try {
    body = JSON.parse(response.text);
  } catch {
    body = undefined;
  }
  if (response.status < 200 || response.status > 299) {
    // IMDS errors are OAuth-shaped: {"error":"invalid_request","error_description":"Identity not found"}.
    const code = isRecord(body) && typeof body['error'] === 'string' ? body['error'] : undefined;
    const description = isRecord(body) && typeof body['error_description'] === 'string' ? body['error_description'] : undefined;
    throw new Error(
      code
        ? `the token endpoint refused: ${code}${description ? ` (${description})` : ''}`
        : `the token endpoint answered HTTP ${response.status}: ${snippet(response.text)}`,
    );
  }
  const token = isRecord(body) ? body['access_token'] : undefined;
  // IMDS sends numbers as strings: expires_on is seconds since the epoch.
  const expiresOn = isRecord(body) ? Number(body['expires_on']) : Number.NaN;
  if (typeof token !== 'string' || token === '') {
    throw new Error(`the token endpoint answered without an access_token: ${isRecord(body) ? `fields ${Object.keys(body).join(', ')}` : 'not a JSON object'}`);
  }
  return { token, expiresOnTimestamp: Number.isFinite(expiresOn) ? expiresOn * 1000 : Number.NaN };
}

/** The endpoint answered, then the answer broke off (or was too big). */
class ReadError extends Error {}

const MAX_METADATA_BYTES = 1 << 20;

/** One GET; redirects are not followed (IMDS never redirects). */
function getText(url: string, signal: AbortSignal): Promise<{ status: number; text: string }> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { headers: { Metadata: 'true' }, signal, agent: false }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_METADATA_BYTES) res.destroy(new ReadError(`answer larger than ${MAX_METADATA_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on('error', (err) => reject(err instanceof ReadError ? err : new ReadError(describeError(err))));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  if (err.name === 'AbortError') return 'aborted';
  return typeof code === 'string' ? code : err.message;
}

function snippet(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > 200 ? `${oneLine.slice(0, 200)}…` : oneLine || '(empty body)';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
