/**
 * A loopback fake Entra ID tenant over HTTPS: the OpenID configuration
 * (`/<tenant>/v2.0/.well-known/openid-configuration`) and its JWKS, with RSA keys generated when
 * it starts. Tests sign tokens with `token(...)` (RS256, a published key) and build the bad ones
 * from the same parts: an unpublished key, `alg: none`, HS256 keyed with the public key.
 * Every request is counted, so tests can prove how often armhook asked for the keys.
 */
import { createHmac, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { exportJWK, SignJWT, type JWTPayload } from 'jose';

export interface EntraFakeOptions {
  /** PEM certificate (valid for 127.0.0.1/localhost) and key. */
  cert: string;
  key: string;
  tenant?: string;
}

export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface TokenOptions {
  /** Claims to add or replace (undefined removes one). */
  claims?: Record<string, unknown>;
  /** The key that signs (default: the first published key). */
  key?: SigningKey;
  /** v1 (sts.windows.net) or v2 (<authority>/<tenant>/v2.0) issuer; default v2. */
  version?: 1 | 2;
}

export interface EntraFake {
  /** https://127.0.0.1:<port>: the authority. */
  url: string;
  tenant: string;
  /** The audience tokens get unless told otherwise. */
  audience: string;
  /** Keys in the JWKS now. */
  published: SigningKey[];
  /** A new key; published (in the JWKS) unless `publish` is false. */
  newKey(publish?: boolean): SigningKey;
  /** A signed RS256 token for `oid` (a new object id by default). */
  token(oid?: string, options?: TokenOptions): Promise<string>;
  /** `{"alg":"none"}` token with the given claims. */
  unsignedToken(oid: string): string;
  /** HS256 token whose HMAC key is the PEM of a published public key (the classic confusion attack). */
  hs256WithPublicKey(oid: string): string;
  /** Requests per path so far. */
  requests: { discovery: number; keys: number };
  close(): Promise<void>;
}

const b64url = (value: string | Buffer): string => Buffer.from(value).toString('base64url');

export async function startEntraFake(options: EntraFakeOptions): Promise<EntraFake> {
  const tenant = options.tenant ?? randomUUID();
  const audience = `api://armhook-test-${tenant.slice(0, 8)}`;
  const published: SigningKey[] = [];
  const requests = { discovery: 0, keys: 0 };
  let url = '';

  const newKey = (publish = true): SigningKey => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const key = { kid: randomUUID(), privateKey, publicKey };
    if (publish) published.push(key);
    return key;
  };
  newKey();

  const server: Server = createServer({ cert: options.cert, key: options.key }, (req, res) => {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === `/${tenant}/v2.0/.well-known/openid-configuration`) {
      requests.discovery++;
      send(200, {
        issuer: `${url}/${tenant}/v2.0`,
        jwks_uri: `${url}/${tenant}/discovery/v2.0/keys`,
        authorization_endpoint: `${url}/${tenant}/oauth2/v2.0/authorize`,
        token_endpoint: `${url}/${tenant}/oauth2/v2.0/token`,
        id_token_signing_alg_values_supported: ['RS256'],
      });
      return;
    }
    if (req.url === `/${tenant}/discovery/v2.0/keys`) {
      requests.keys++;
      void Promise.all(published.map(async (k) => ({ ...(await exportJWK(k.publicKey)), kid: k.kid, use: 'sig', kty: 'RSA' }))).then((keys) =>
        send(200, { keys }),
      );
      return;
    }
    send(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const claimsFor = (oid: string, options: TokenOptions = {}): JWTPayload => {
    const now = Math.floor(Date.now() / 1000);
    const base: Record<string, unknown> = {
      aud: audience,
      iss: options.version === 1 ? `https://sts.windows.net/${tenant}/` : `${url}/${tenant}/v2.0`,
      tid: tenant,
      oid,
      sub: oid,
      appid: randomUUID(),
      iat: now - 60,
      nbf: now - 60,
      exp: now + 3600,
    };
    for (const [name, value] of Object.entries(options.claims ?? {})) {
      if (value === undefined) delete base[name];
      else base[name] = value;
    }
    return base;
  };

  return {
    url,
    tenant,
    audience,
    published,
    newKey,
    async token(oid = randomUUID(), tokenOptions = {}) {
      const key = tokenOptions.key ?? published[0];
      if (!key) throw new Error('no key');
      return new SignJWT(claimsFor(oid, tokenOptions)).setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' }).sign(key.privateKey);
    },
    unsignedToken(oid) {
      return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT', kid: published[0]?.kid }))}.${b64url(JSON.stringify(claimsFor(oid)))}.`;
    },
    hs256WithPublicKey(oid) {
      const key = published[0];
      if (!key) throw new Error('no key');
      const signingInput = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: key.kid }))}.${b64url(JSON.stringify(claimsFor(oid)))}`;
      const secret = key.publicKey.export({ type: 'spki', format: 'pem' });
      return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
    },
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
