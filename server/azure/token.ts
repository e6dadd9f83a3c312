/**
 * One access token from armhook's identity settings, for `armhook token` (scripts that call Key
 * Vault, Storage or SQL). On a VM it is the same plain IMDS request readiness sends; where the
 * identity library would use another source (Arc, App Service, workload identity) it goes
 * through the library, so the token comes from where armhook's own tokens come from.
 */
import { createCredential, describeCredentialError, identityFromToken, tokenProbeFor, type IdentityInfo } from './identity.ts';
import { requestImdsToken } from './metadata.ts';

export interface TokenRequest {
  /** The audience: a resource URI (`https://vault.azure.net`) or a scope ending in `/.default`. */
  resource: string;
  imdsEndpoint: string;
  /** User-assigned identity; absent = system-assigned. */
  clientId?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

export interface ScriptToken extends IdentityInfo {
  accessToken: string;
  /** The resource the token is for (without `/.default`). */
  resource: string;
  expiresOnTimestamp: number;
}

/** Throws Error with a message an operator can act on (never the token). */
export async function getAccessToken(request: TokenRequest): Promise<ScriptToken> {
  const resource = request.resource.replace(/\/\.default$/, '');
  const type: IdentityInfo['identityType'] = request.clientId ? 'user-assigned' : 'system-assigned';
  let token: { token: string; expiresOnTimestamp: number };
  try {
    if (tokenProbeFor(request.env ?? process.env) === 'imds') {
      token = await requestImdsToken(request.imdsEndpoint, { resource, ...(request.clientId ? { clientId: request.clientId } : {}) });
    } else {
      const credential = await createCredential({
        imdsEndpoint: request.imdsEndpoint,
        ...(request.clientId ? { managedIdentityClientId: request.clientId } : {}),
        observer: { onToken: () => undefined, onError: () => undefined },
      });
      const got = await credential.getToken(`${resource}/.default`);
      if (!got) throw new Error('the identity library returned no token');
      token = got;
    }
  } catch (err) {
    throw new Error(`no token for ${resource} from the ${type} managed identity: ${describeCredentialError(err)}`, { cause: err });
  }
  return { ...identityFromToken(token, type), accessToken: token.token, resource, expiresOnTimestamp: token.expiresOnTimestamp };
}
