import { getAccessToken } from '../azure/index.ts';
import { SETTINGS, type Config } from '../config/index.ts';
import { msiEndpointFor } from '../hooks/az-setup.ts';

export interface TokenOptions {
  /** Resource URI or scope; default: Resource Manager (the configured endpoint). */
  resource?: string | undefined;
  json: boolean;
}

const DEFAULT_IMDS = SETTINGS.find((s) => s.key === 'imdsEndpoint')?.default;

/**
 * `armhook token`: prints an access token of armhook's managed identity. Inside a job the
 * script's environment has no ARMHOOK_* settings, so the identity settings scripts get (the
 * standard AZURE_CLIENT_ID and AZURE_POD_IDENTITY_AUTHORITY_HOST) stand in for them.
 */
export async function printToken(config: Config, options: TokenOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const resource = options.resource ?? config.armEndpoint;
  if (!URL.canParse(resource) || /\s/.test(resource)) {
    process.stderr.write(`armhook token: --resource must be a resource URI such as https://vault.azure.net, got ${JSON.stringify(resource)}\n`);
    return 2;
  }
  const imdsEndpoint =
    config.imdsEndpoint === DEFAULT_IMDS && env.AZURE_POD_IDENTITY_AUTHORITY_HOST ? env.AZURE_POD_IDENTITY_AUTHORITY_HOST : config.imdsEndpoint;
  const clientId = config.managedIdentityClientId ?? (env.AZURE_CLIENT_ID || undefined);
  // Inside a job, an MSI_ENDPOINT on this IMDS is the one armhook gives az: the same endpoint,
  // not a Cloud Shell, which the identity library would take it for (and refuse a client id).
  const identityEnv = env.MSI_ENDPOINT === msiEndpointFor(imdsEndpoint) ? { ...env, MSI_ENDPOINT: undefined } : env;
  let token;
  try {
    token = await getAccessToken({ resource, imdsEndpoint, clientId, env: identityEnv });
  } catch (err) {
    process.stderr.write(`armhook token: ${(err as Error).message}\n`);
    return 1;
  }
  if (!options.json) {
    process.stdout.write(`${token.accessToken}\n`);
    return 0;
  }
  const expiresOn = Number.isFinite(token.expiresOnTimestamp) ? new Date(token.expiresOnTimestamp) : undefined;
  const out = {
    accessToken: token.accessToken,
    tokenType: 'Bearer',
    resource: token.resource,
    expiresOn: expiresOn?.toISOString() ?? null,
    expires_on: expiresOn ? Math.floor(expiresOn.getTime() / 1000) : null,
    identityType: token.identityType,
    principalId: token.principalId ?? null,
    tenantId: token.tenantId ?? null,
    clientId: token.clientId ?? null,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  return 0;
}
