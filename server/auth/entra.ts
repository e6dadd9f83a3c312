// Entra ID (Azure AD) bearer tokens, for callers with their own managed identity or app
// registration. Keys come from the tenant's OpenID configuration (its jwks_uri), through jose's
// remote key set: cached, fetched again once when a token names an unknown key id. Neither the
// discovery document nor the key set is fetched more than once per refetch interval (a minute),
// whatever callers send, so a flood of made-up key ids cannot turn armhook against the tenant.

import { request as httpsRequest } from 'node:https';
import { createRemoteJWKSet, customFetch, errors, jwtVerify, type FlattenedJWSInput, type JWTHeaderParameters, type JWTPayload } from 'jose';
import type { Logger } from 'pino';
import { isGuid } from '../config/index.ts';
import { TokenError } from './token-error.ts';

export interface EntraOptions {
  /** Tenant id (a GUID). */
  tenant: string;
  /** Accepted audiences (the `aud` claim): an app id URI or client id. */
  audiences: string[];
  /** e.g. https://login.microsoftonline.com */
  authority: string;
  log: Logger;
  /** Extra CA (PEM) to trust for the authority (tests: a loopback fake tenant). */
  ca?: string;
  /** Least time between two fetches of the keys or the discovery document, ms (default 60000). */
  refetchIntervalMs?: number;
}

/** Who a valid token names. */
export interface EntraIdentity {
  /** Object id of the calling identity (managed identity, service principal or user). */
  oid: string;
  /** Client (application) id, when the token says. */
  appId: string | undefined;
}

type RemoteKeys = ReturnType<typeof createRemoteJWKSet>;

const CLOCK_SKEW_SECONDS = 300;
const MAX_DOCUMENT_BYTES = 1024 * 1024;
const FETCH_TIMEOUT_MS = 5000;

/** GET over HTTPS as a fetch Response (jose's custom fetch contract), with a size limit. */
function httpsGet(url: string, ca: string | undefined, signal: AbortSignal): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'GET', signal, headers: { accept: 'application/json' }, ...(ca ? { ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_DOCUMENT_BYTES) res.destroy(new Error(`${url} sent more than ${MAX_DOCUMENT_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on('error', reject);
      res.on('end', () =>
        resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 502, headers: { 'content-type': String(res.headers['content-type'] ?? '') } })),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** Why jose refused a token, in words a caller can act on. */
function reasonFor(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'the token has expired; get a new one';
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf':
        return 'the token is not valid yet (nbf)';
      case 'aud':
        return 'the token is for another audience; request it for the audience armhook accepts (ARMHOOK_ENTRA_AUDIENCE)';
      case 'iss':
        return 'the token was not issued by the configured tenant';
      default:
        return `the token's ${err.claim} claim is missing or invalid`;
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return 'the token is not signed with RS256';
  if (err instanceof errors.JWKSNoMatchingKey) return "the token's signing key is not one of the tenant's keys";
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'the token signature is invalid';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'the token is malformed';
  return 'the token could not be verified';
}

export class EntraVerifier {
  readonly tenant: string;
  readonly #audiences: string[];
  readonly #issuers: string[];
  readonly #discoveryUrl: string;
  readonly #log: Logger;
  readonly #ca: string | undefined;
  readonly #intervalMs: number;
  #keys: RemoteKeys | undefined;
  #jwksUri = '';
  #discovering: Promise<RemoteKeys> | undefined;
  /** When each kind of document was last requested (ms), to keep to one request per interval. */
  readonly #lastFetch = new Map<'discovery' | 'keys', number>();
  /** When the signing keys last arrived (ms): tells a key unknown to a fresh set from one our cache may lack. */
  #keysArrivedAt: number | undefined;
  /** Requests made to the tenant (diagnostics and tests). */
  fetches = 0;

  constructor(options: EntraOptions) {
    this.tenant = options.tenant.toLowerCase();
    this.#audiences = options.audiences;
    const authority = options.authority.replace(/\/+$/, '');
    this.#issuers = [`https://sts.windows.net/${this.tenant}/`, `${authority}/${this.tenant}/v2.0`];
    this.#discoveryUrl = `${authority}/${this.tenant}/v2.0/.well-known/openid-configuration`;
    this.#log = options.log;
    this.#ca = options.ca;
    this.#intervalMs = options.refetchIntervalMs ?? 60_000;
  }

  /**
   * Verifies a token; resolves with the identity it names or throws TokenError. A refusal is
   * armhook's (`ours`, not counted against the caller) when the keys cannot be had, or when the
   * token names a key our set, fetched within the refetch interval, does not hold: only a set
   * fetched for this very token proves that the key is not the tenant's.
   */
  async verify(token: string): Promise<EntraIdentity> {
    const started = Date.now();
    const keys = await this.#keySet();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, (header, jws) => this.#key(keys, header, jws), {
        algorithms: ['RS256'],
        issuer: this.#issuers,
        audience: this.#audiences,
        clockTolerance: CLOCK_SKEW_SECONDS,
        requiredClaims: ['exp', 'tid', 'oid'],
      }));
    } catch (err) {
      if (err instanceof TokenError) throw err;
      if (err instanceof errors.JWKSNoMatchingKey && (this.#keysArrivedAt ?? 0) < started) throw this.#unknownToCache();
      throw new TokenError(reasonFor(err));
    }
    if (String(payload.tid).toLowerCase() !== this.tenant) throw new TokenError('the token belongs to another tenant');
    const oid = String(payload.oid);
    if (!isGuid(oid)) throw new TokenError("the token's oid claim is not an object id");
    const appId = typeof payload.appid === 'string' ? payload.appid : typeof payload.azp === 'string' ? payload.azp : undefined;
    return { oid: oid.toLowerCase(), appId };
  }

  /** The key set's answer; not getting the keys at all is armhook's failure, never the caller's. */
  async #key(keys: RemoteKeys, header: JWTHeaderParameters, jws: FlattenedJWSInput): ReturnType<RemoteKeys> {
    try {
      return await keys(header, jws);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
      // A failed request is logged where it is made; what jose found wrong with an answer is logged here.
      if (err instanceof errors.JOSEError && !(err instanceof errors.JWKSTimeout))
        this.#log.error({ err: err.message }, "the Entra tenant's signing keys are not usable; bearer tokens are refused until they are");
      throw new TokenError(`the tenant's signing keys are not available right now; try again in ${this.#secondsToNextFetch()} s`, true);
    }
  }

  /** A key id the cached set lacks, within the interval in which armhook does not ask the tenant again. */
  #unknownToCache(): TokenError {
    const age = Math.floor((Date.now() - (this.#keysArrivedAt ?? 0)) / 1000);
    return new TokenError(
      `the token's signing key is not one of the tenant's keys fetched ${age} s ago; armhook asks the tenant again at most once a minute, so if the key is new, retry in ${this.#secondsToNextFetch()} s`,
      true,
    );
  }

  #secondsToNextFetch(): number {
    const last = this.#lastFetch.get('keys') ?? 0;
    return Math.max(1, Math.ceil((last + this.#intervalMs - Date.now()) / 1000));
  }

  /** Fetches the tenant's signing keys now (`armhook check`): where they come from and how many. */
  async signingKeys(): Promise<{ jwksUri: string; count: number }> {
    const keys = await this.#keySet();
    await keys.reload();
    return { jwksUri: this.#jwksUri, count: keys.jwks()?.keys.length ?? 0 };
  }

  /** A fetch that never asks the tenant for the same kind of document twice within the interval. */
  async #fetch(kind: 'discovery' | 'keys', url: string, signal: AbortSignal): Promise<Response> {
    const now = Date.now();
    const last = this.#lastFetch.get(kind);
    if (last !== undefined && now - last < this.#intervalMs)
      throw new TokenError(
        `the tenant's ${kind === 'keys' ? 'signing keys were' : 'OpenID configuration was'} fetched less than ${Math.ceil(this.#intervalMs / 1000)} s ago`,
        true,
      );
    this.#lastFetch.set(kind, now);
    this.fetches++;
    try {
      const res = await httpsGet(url, this.#ca, signal);
      if (kind === 'keys' && res.status === 200) this.#keysArrivedAt = Date.now();
      return res;
    } catch (err) {
      this.#log.error(
        { url, err: (err as Error).message },
        `cannot fetch the Entra tenant's ${kind === 'keys' ? 'signing keys' : 'OpenID configuration'}; bearer tokens are refused until it answers (check ARMHOOK_ENTRA_AUTHORITY, DNS and outbound HTTPS)`,
      );
      throw err;
    }
  }

  #keySet(): Promise<RemoteKeys> {
    if (this.#keys) return Promise.resolve(this.#keys);
    this.#discovering ??= this.#discover().finally(() => {
      this.#discovering = undefined;
    });
    return this.#discovering;
  }

  async #discover(): Promise<RemoteKeys> {
    let jwksUri: URL;
    try {
      const res = await this.#fetch('discovery', this.#discoveryUrl, AbortSignal.timeout(FETCH_TIMEOUT_MS));
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const doc = (await res.json()) as { jwks_uri?: unknown };
      if (typeof doc.jwks_uri !== 'string') throw new Error('no jwks_uri');
      jwksUri = new URL(doc.jwks_uri);
      if (jwksUri.protocol !== 'https:') throw new Error(`jwks_uri ${doc.jwks_uri} is not https`);
    } catch (err) {
      // Within the refetch interval after a failure the tenant is not asked again.
      if (err instanceof TokenError) throw new TokenError("the tenant's signing keys are not available right now; try again in a minute", true);
      this.#log.error(
        { url: this.#discoveryUrl, err: (err as Error).message },
        "the Entra tenant's OpenID configuration is not usable; bearer tokens are refused until it is",
      );
      throw new TokenError("the tenant's signing keys are not available right now; try again in a minute", true);
    }
    this.#keys = createRemoteJWKSet(jwksUri, {
      cooldownDuration: this.#intervalMs,
      cacheMaxAge: 24 * 3600 * 1000,
      timeoutDuration: FETCH_TIMEOUT_MS,
      [customFetch]: (url, options) => this.#fetch('keys', url, options.signal),
    });
    this.#jwksUri = jwksUri.href;
    this.#log.info({ jwksUri: jwksUri.href }, 'Entra tenant keys located');
    return this.#keys;
  }
}
