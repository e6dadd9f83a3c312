/**
 * Azure Instance Metadata Service (IMDS) client: the VM's subscription, resource group, location
 * and name. Plain `fetch` with a short timeout: off Azure the link-local address usually drops
 * packets, so a request without a timeout would hang for minutes.
 */

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
export async function readInstanceMetadata(
  imdsEndpoint: string,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<InstanceMetadata> {
  const url = metadataUrl(imdsEndpoint);
  const base = imdsEndpoint.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? METADATA_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  let response: Response;
  try {
    response = await fetch(url, { headers: { Metadata: 'true' }, signal, redirect: 'error' });
  } catch (err) {
    throw new MetadataError(`instance metadata unreachable at ${base}: ${describeFetchError(err, timeout, timeoutMs)} — is this an Azure VM?`, false);
  }
  let text: string;
  try {
    text = await response.text();
  } catch (err) {
    throw new MetadataError(`instance metadata at ${base}: reading the answer failed: ${describeFetchError(err, timeout, timeoutMs)}`, true);
  }
  if (!response.ok) {
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

function describeFetchError(err: unknown, timeout: AbortSignal, timeoutMs: number): string {
  if (timeout.aborted) return `no answer within ${timeoutMs / 1000} s`;
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof Error) {
      const code = (cause as { code?: unknown }).code;
      return typeof code === 'string' ? code : cause.message;
    }
    if (err.name === 'AbortError') return 'aborted';
    return err.message;
  }
  return String(err);
}

function snippet(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > 200 ? `${oneLine.slice(0, 200)}…` : oneLine || '(empty body)';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
