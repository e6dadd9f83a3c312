/**
 * A loopback fake of the Azure Instance Metadata Service (IMDS), plain HTTP like the real one.
 *
 * - GET /metadata/identity/oauth2/token/?api-version=2018-02-01&resource=<aud>[&client_id=<id>]
 *   with `Metadata: true`: what @azure/msal-node's Imds source sends (the identity library routes
 *   ManagedIdentityCredential through MSAL) when AZURE_POD_IDENTITY_AUTHORITY_HOST points here;
 *   armhook's readiness probe sends the same without the trailing slash.
 *   Answers an IMDS-shaped token response whose access_token is JWT-shaped (oid/tid/appid/xms_mirid).
 * - POST /metadata/identity/oauth2/token with a form body (resource, client_id) and `Metadata: true`:
 *   what Azure CLI 2.45 sends when MSI_ENDPOINT points here; same answer.
 * - GET /metadata/instance?api-version=… with `Metadata: true`: the `compute` section.
 *
 * Switches: down() / up() (stop listening / listen again on the same port → ECONNREFUSED while
 * down), failToken() / failMetadata() (HTTP errors), counters per endpoint.
 *
 * The identity library reads AZURE_POD_IDENTITY_AUTHORITY_HOST once per process and caches tokens
 * per process: one IMDS fake per test process (node --test runs each file in its own process).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ImdsCompute {
  subscriptionId: string;
  resourceGroupName: string;
  location: string;
  name: string;
  vmId: string;
  azEnvironment: string;
}

export interface ImdsClaims {
  oid: string;
  tid: string;
  appid: string;
}

export interface ImdsFakeOptions {
  compute?: Partial<ImdsCompute>;
  claims?: Partial<ImdsClaims>;
  /** Token lifetime in seconds (default 24 h). */
  tokenLifetimeSeconds?: number;
  /** Client ids of user-assigned identities the fake knows (others → 400 "Identity not found"). */
  userAssignedClientIds?: string[];
}

export interface TokenRequestRecord {
  /** `/metadata/identity/oauth2/token` from armhook's readiness probe, `…/token/` from the identity library (MSAL). */
  path: string;
  /** GET (IMDS's own form), or POST with a form body (what MSI_ENDPOINT clients such as Azure CLI 2.45 send). */
  method: 'GET' | 'POST';
  resource: string | null;
  apiVersion: string | null;
  clientId: string | null;
}

export interface ImdsFake {
  /** Base URL, e.g. http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  counts: { token: number; metadata: number; other: number };
  tokenRequests: TokenRequestRecord[];
  /** Every access token the fake has issued (tests prove none of them leaks). */
  issuedTokens: string[];
  compute: ImdsCompute;
  claims: ImdsClaims;
  /** Stop listening (connections are refused) until up(). */
  down(): Promise<void>;
  up(): Promise<void>;
  /**
   * Token requests answer `status` with an IMDS-style error body until cleared with
   * failToken(undefined); `only` limits it to the identity library's requests (path with the
   * trailing slash) or armhook's readiness probe (without).
   */
  failToken(status: number | undefined, error?: string, description?: string, only?: 'library' | 'probe'): void;
  /** Makes a user-assigned identity known (token requests with its client_id succeed). */
  allowClientId(clientId: string): void;
  /** Metadata requests answer `status` until cleared with failMetadata(undefined). */
  failMetadata(status: number | undefined): void;
  close(): Promise<void>;
}

export const FAKE_SUBSCRIPTION_ID = '00000000-1111-2222-3333-444444444444';

export async function startImdsFake(options: ImdsFakeOptions = {}): Promise<ImdsFake> {
  const compute: ImdsCompute = {
    subscriptionId: FAKE_SUBSCRIPTION_ID,
    resourceGroupName: 'runner-rg',
    location: 'westeurope',
    name: 'runner-vm',
    vmId: '5c0a9e1d-7f3b-4c2a-9d4e-0123456789ab',
    azEnvironment: 'AzurePublicCloud',
    ...options.compute,
  };
  const claims: ImdsClaims = {
    oid: 'aaaaaaaa-0000-4000-8000-000000000001',
    tid: 'tttttttt-0000-4000-8000-000000000002',
    appid: 'cccccccc-0000-4000-8000-000000000003',
    ...options.claims,
  };
  const lifetime = options.tokenLifetimeSeconds ?? 24 * 3600;
  const counts = { token: 0, metadata: 0, other: 0 };
  const tokenRequests: TokenRequestRecord[] = [];
  const issuedTokens: string[] = [];
  let tokenFailure: { status: number; error: string; description: string; only: 'library' | 'probe' | undefined } | undefined;
  let metadataFailure: number | undefined;
  const sockets = new Set<Socket>();
  const knownClientIds = new Set(options.userAssignedClientIds ?? []);

  const issueToken = (req: IncomingMessage, send: (status: number, body: unknown) => void, record: TokenRequestRecord): void => {
    counts.token += 1;
    tokenRequests.push(record);
    if (req.headers['metadata'] !== 'true') {
      return send(400, { error: 'invalid_request', error_description: 'Required metadata header not specified' });
    }
    if (!record.resource) return send(400, { error: 'invalid_request', error_description: 'Required query variable resource is missing' });
    const fromLibrary = record.path.endsWith('/');
    if (tokenFailure && (tokenFailure.only === undefined || (tokenFailure.only === 'library') === fromLibrary)) {
      return send(tokenFailure.status, { error: tokenFailure.error, error_description: tokenFailure.description });
    }
    if (record.clientId && !knownClientIds.has(record.clientId)) {
      return send(400, { error: 'invalid_request', error_description: 'Identity not found' });
    }
    const now = Math.floor(Date.now() / 1000);
    const userAssigned = record.clientId !== null;
    const payload = {
      aud: record.resource,
      iss: `https://sts.windows.net/${claims.tid}/`,
      iat: now,
      nbf: now,
      exp: now + lifetime,
      appid: userAssigned ? record.clientId : claims.appid,
      appidacr: '2',
      idp: `https://sts.windows.net/${claims.tid}/`,
      oid: userAssigned ? `${claims.oid.slice(0, -4)}beef` : claims.oid,
      sub: claims.oid,
      tid: claims.tid,
      xms_mirid: userAssigned
        ? `/subscriptions/${compute.subscriptionId}/resourcegroups/${compute.resourceGroupName}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/armhook-id`
        : `/subscriptions/${compute.subscriptionId}/resourcegroups/${compute.resourceGroupName}/providers/Microsoft.Compute/virtualMachines/${compute.name}`,
    };
    const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    const token = `${b64({ typ: 'JWT', alg: 'RS256', kid: 'fake' })}.${b64(payload)}.${Buffer.from('not-a-signature').toString('base64url')}`;
    issuedTokens.push(token);
    // IMDS sends every number as a string.
    return send(200, {
      access_token: token,
      client_id: payload.appid,
      expires_in: String(lifetime),
      expires_on: String(now + lifetime),
      ext_expires_in: String(lifetime),
      not_before: String(now),
      resource: record.resource,
      token_type: 'Bearer',
    });
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://imds');
    const send = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    const isTokenPath = url.pathname === '/metadata/identity/oauth2/token' || url.pathname === '/metadata/identity/oauth2/token/';
    if (req.method === 'POST' && url.pathname === '/metadata/identity/oauth2/token') {
      // MSI_ENDPOINT's form (Azure CLI 2.45 through msrestazure): POST, the parameters as a form body.
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        issueToken(req, send, {
          path: url.pathname,
          method: 'POST',
          resource: form.get('resource'),
          apiVersion: form.get('api-version'),
          clientId: form.get('client_id'),
        });
      });
      return;
    }
    if (req.method !== 'GET') {
      counts.other += 1;
      return send(405, { error: 'Method not allowed' });
    }
    // MSAL normalises the URL with a trailing slash (/token/); the real IMDS takes both.
    if (isTokenPath) {
      return issueToken(req, send, {
        path: url.pathname,
        method: 'GET',
        resource: url.searchParams.get('resource'),
        apiVersion: url.searchParams.get('api-version'),
        clientId: url.searchParams.get('client_id'),
      });
    }
    if (url.pathname === '/metadata/instance') {
      counts.metadata += 1;
      if (req.headers['metadata'] !== 'true') return send(400, { error: 'Bad request. Required metadata header not specified' });
      if (metadataFailure) return send(metadataFailure, { error: `fake IMDS failure ${metadataFailure}` });
      return send(200, {
        compute: {
          ...compute,
          osType: 'Linux',
          vmSize: 'Standard_B1s',
          resourceId: `/subscriptions/${compute.subscriptionId}/resourceGroups/${compute.resourceGroupName}/providers/Microsoft.Compute/virtualMachines/${compute.name}`,
        },
        network: { interface: [] },
      });
    }
    counts.other += 1;
    return send(404, { error: 'Not found' });
  };

  let server: Server = createServer(handler);
  const track = (s: Server): void => {
    s.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
  };
  track(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  const stop = async (): Promise<void> => {
    if (!server.listening) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };

  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    tokenRequests,
    issuedTokens,
    compute,
    claims,
    down: stop,
    async up() {
      if (server.listening) return;
      server = createServer(handler);
      track(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
    },
    failToken(status, error = 'invalid_request', description = 'Identity not found', only) {
      tokenFailure = status === undefined ? undefined : { status, error, description, only };
    },
    allowClientId(clientId) {
      knownClientIds.add(clientId);
    },
    failMetadata(status) {
      metadataFailure = status;
    },
    close: stop,
  };
}
