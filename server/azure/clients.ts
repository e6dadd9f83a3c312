/**
 * The ARM clients, built once per service with the one credential. The SDK packages are loaded on
 * first use (`await import`), not at start-up: together they are several MB of JavaScript that a
 * runner which only runs scripts never needs.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Agent as HttpsAgent } from 'node:https';
import { createSecureContext, getCACertificates } from 'node:tls';
import type { TokenCredential } from '@azure/identity';
import type { ResourceManagementClient, ResourceManagementClientOptionalParams } from '@azure/arm-resources';
import type { ComputeManagementClient } from '@azure/arm-compute';
import type { DeploymentsClient } from '@azure/arm-resourcesdeployments';
import type { IdentityInfo } from './identity.ts';
import type { InstanceMetadata } from './metadata.ts';
import { recordArmError } from './errors.ts';

/** The SDK's pipeline policy type, as the clients' options name it (no direct core-rest-pipeline import). */
type PipelinePolicy = NonNullable<ResourceManagementClientOptionalParams['additionalPolicies']>[number]['policy'];

export interface RetryOptions {
  /** Retries of throttled (429), unavailable (5xx) and failed-to-send requests. SDK default 3. */
  maxRetries?: number;
  /** First back-off delay; doubles per retry. SDK default 1000. */
  retryDelayInMs?: number;
  /** Upper bound of one back-off delay. SDK default 64000. */
  maxRetryDelayInMs?: number;
}

/** What every handler gets as `ctx.clients`. */
export interface AzureClients {
  resources: ResourceManagementClient;
  compute: ComputeManagementClient;
  deployments: DeploymentsClient;
  /** The VM's instance metadata: default subscription, resource group and location. */
  metadata: InstanceMetadata;
  subscriptionId: string;
  armEndpoint: string;
  /** Interval between LRO polls (ARM's Retry-After, when sent, wins). */
  pollIntervalMs: number;
  /** The identity in use, from the latest token's claims (no token). */
  identity(): IdentityInfo | undefined;
  /** Fetches (normally: reads from the cache) a token and returns its claims, never the token. */
  currentIdentity(signal?: AbortSignal): Promise<IdentityInfo>;
  /** Retry settings the clients were built with (error messages say how often ARM was retried). */
  maxRetries: number;
}

export interface ClientSettings {
  credential: TokenCredential;
  armEndpoint: string;
  subscriptionId: string;
  /** Extra CA (PEM) trusted for ARM in addition to the public roots. */
  armCaCert?: string;
  retry?: RetryOptions;
}

export function armScope(armEndpoint: string): string {
  return `${armEndpoint.replace(/\/+$/, '')}/.default`;
}

/**
 * Remembers ARM's error body (code and message only) of every non-2xx answer, by request, so that
 * errors.ts can map a list call's 403/404 like any other: the SDK's paging helpers throw
 * "Pagination failed with unexpected statusCode 403" without it. Per call (before the retry
 * policy): it sees the answer the SDK finally acts on, not the retried ones.
 */
export const armErrorBodyPolicy: PipelinePolicy = {
  name: 'armhookArmErrorBody',
  async sendRequest(request, next) {
    const response = await next(request);
    if (response.status >= 400) recordArmError(request, response.status, response.bodyAsText);
    return response;
  },
};

/**
 * The HTTPS agent for a Resource Manager behind a private CA (Azure Stack Hub, tests): one secure
 * context holding the process's default roots (bundled, NODE_EXTRA_CA_CERTS, system when enabled)
 * plus that CA, built once. Why not the clients' `tlsOptions.ca`: it replaces the roots, so it
 * must carry all ~150 of them, and Node's https agent then joins that list into its pool key on
 * every request and builds a secure context from it per connection — a fifth of a typed handler's
 * CPU in the bench profile. A prepared `secureContext` is neither. (As with `tlsOptions`, the
 * SDK's proxy support does not combine with a CA of one's own: this agent connects directly.)
 */
export function armAgent(caPem: string): HttpsAgent {
  const secureContext = createSecureContext({ ca: [...getCACertificates('default'), ...caCertificates(caPem)] });
  return new HttpsAgent({ keepAlive: true, secureContext });
}

/**
 * The certificates of a PEM file (a CA bundle may hold several; OpenSSL's TRUSTED CERTIFICATE
 * form too), each checked to be one. Throws an Error saying what is wrong, for the start-up message.
 */
export function caCertificates(pem: string): string[] {
  const blocks = pem.replace(/\r\n/g, '\n').match(/-----BEGIN (TRUSTED )?CERTIFICATE-----[\s\S]*?-----END \1?CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error('no PEM certificate ("-----BEGIN CERTIFICATE-----") in it');
  blocks.forEach((block, i) => {
    try {
      // X509Certificate reads the plain form only; OpenSSL itself (a secure context) reads both.
      if (block.startsWith('-----BEGIN TRUSTED')) createSecureContext({ ca: block });
      else new X509Certificate(block);
    } catch (err) {
      throw new Error(`certificate ${i + 1} of ${blocks.length} is not valid (${err instanceof Error ? err.message : String(err)})`, { cause: err });
    }
  });
  return blocks.map((b) => b.trim());
}

/**
 * Reads ARMHOOK_ARM_CA_FILE: the PEM certificate(s) of the CA that signed Resource Manager's
 * certificate. Throws an Error whose message names the setting, the file and what is wrong.
 */
export async function readArmCaFile(file: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`ARMHOOK_ARM_CA_FILE ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  try {
    caCertificates(pem);
  } catch (err) {
    throw new Error(
      `ARMHOOK_ARM_CA_FILE ${file}: ${(err as Error).message}; it must hold the PEM certificate(s) of the CA that signed Resource Manager's certificate`,
      { cause: err },
    );
  }
  return pem;
}

export async function buildArmClients(settings: ClientSettings): Promise<Pick<AzureClients, 'resources' | 'compute' | 'deployments'>> {
  const [{ ResourceManagementClient }, { ComputeManagementClient }, { DeploymentsClient }] = await Promise.all([
    import('@azure/arm-resources'),
    import('@azure/arm-compute'),
    import('@azure/arm-resourcesdeployments'),
  ]);
  const endpoint = settings.armEndpoint.replace(/\/+$/, '');
  const options = {
    endpoint,
    credentials: { scopes: [armScope(endpoint)] },
    ...(settings.armCaCert ? { agent: armAgent(settings.armCaCert) } : {}),
    ...(settings.retry ? { retryOptions: settings.retry } : {}),
    userAgentOptions: { userAgentPrefix: 'armhook' },
    additionalPolicies: [{ policy: armErrorBodyPolicy, position: 'perCall' as const }],
  };
  return {
    resources: new ResourceManagementClient(settings.credential, settings.subscriptionId, options),
    compute: new ComputeManagementClient(settings.credential, settings.subscriptionId, options),
    deployments: new DeploymentsClient(settings.credential, settings.subscriptionId, options),
  };
}
