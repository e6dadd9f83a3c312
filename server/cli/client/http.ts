import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/** How the client reaches and proves itself to an armhook server. */
export interface ClientOptions {
  /** `user:password` for basic auth. */
  user?: string;
  /** A bearer token (Entra ID). */
  token?: string;
  /** A PEM file of the CA(s) to trust instead of the system's. */
  cacert?: string;
  /** Skip certificate verification (a dev certificate you have not copied). */
  insecure?: boolean;
}

/** A failure to reach the server at all (refused, reset, TLS), as opposed to an HTTP answer. */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
}

export interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  /** The body as it arrives (already started flowing only when read). */
  body: IncomingMessage;
}

/** Seconds of silence after which a stream counts as dropped (the server comments every 15 s). */
const IDLE_TIMEOUT_MS = 45_000;

/**
 * A small HTTP(S) client on node:http(s): per-call CA and verification settings (fetch has
 * neither), the raw response as a stream (for server-sent events and backpressure), and no
 * framework to load, so `armhook call` starts fast.
 */
export class ServerClient {
  readonly #authorization: string | undefined;
  readonly #ca: string | undefined;
  readonly #insecure: boolean;
  readonly #https: HttpsAgent;
  readonly #http = new HttpAgent({ keepAlive: true });

  constructor(options: ClientOptions) {
    if (options.token) this.#authorization = `Bearer ${options.token}`;
    else if (options.user) this.#authorization = `Basic ${Buffer.from(options.user).toString('base64')}`;
    this.#ca = options.cacert ? readCa(options.cacert) : undefined;
    this.#insecure = options.insecure === true;
    this.#https = new HttpsAgent({ keepAlive: true, ...(this.#ca ? { ca: this.#ca } : {}), rejectUnauthorized: !this.#insecure });
  }

  /** Sends one request; resolves when the response headers arrive. */
  request(method: string, url: URL, headers: Record<string, string> = {}, body?: Buffer): Promise<Answer> {
    const all: Record<string, string> = { 'User-Agent': 'armhook-cli', ...headers };
    if (this.#authorization) all.Authorization = this.#authorization;
    if (body) all['Content-Length'] = String(body.length);
    const secure = url.protocol === 'https:';
    const send = secure ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(url, { method, headers: all, agent: secure ? this.#https : this.#http }, (res) => {
        res.socket.setTimeout(IDLE_TIMEOUT_MS, () => res.destroy(new ConnectionError(`no data from ${url.host} for ${IDLE_TIMEOUT_MS / 1000} s`)));
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      req.on('error', (err: NodeJS.ErrnoException) => reject(new ConnectionError(describeConnectionError(url, err))));
      req.end(body);
    });
  }

  /** A request whose answer is JSON (armhook's records and errors). */
  async json<T>(method: string, url: URL, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingMessage['headers']; body: T }> {
    const answer = await this.request(method, url, { Accept: 'application/json', ...headers });
    return { status: answer.status, headers: answer.headers, body: (await readJson(answer.body)) as T };
  }

  close(): void {
    this.#https.destroy();
    this.#http.destroy();
  }
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConnectionError(`--cacert ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

export async function readText(body: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of body) chunks.push(chunk as Buffer);
  } catch (err) {
    throw new ConnectionError(`the connection dropped while reading the answer (${(err as Error).message})`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function readJson(body: IncomingMessage): Promise<unknown> {
  const text = await readText(body);
  try {
    return JSON.parse(text);
  } catch {
    return { error: 'not_json', message: text.slice(0, 500) || '(empty answer)' };
  }
}

function describeConnectionError(url: URL, err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (code === 'ECONNREFUSED') return `nothing listens at ${url.host} (connection refused); is armhook running, and is the URL right?`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve ${url.hostname}`;
  if (
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'
  ) {
    return `the certificate of ${url.host} is not trusted (${code}); pass its CA with --cacert FILE (the dev certificate is tls/dev-cert.pem on the server), or --insecure for a test`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the certificate of ${url.host} is for another name; use the name it was issued for`;
  return `${url.host}: ${err.message}`;
}
