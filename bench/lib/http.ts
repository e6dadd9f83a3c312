/** HTTPS client helpers for the bench: small requests, bounded polling, timing. */
import { Agent, request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { delay } from './procs.ts';

export interface Target {
  /** https://127.0.0.1:<port> */
  base: string;
  /** PEM CA the client trusts (the bench's self-signed certificate). */
  ca: string;
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

const agents = new Map<string, Agent>();
/** One keep-alive agent per CA for small requests. */
function agentFor(ca: string): Agent {
  let a = agents.get(ca);
  if (!a) {
    a = new Agent({ keepAlive: true, ca, maxSockets: 256 });
    agents.set(ca, a);
  }
  return a;
}

export function closeAgents(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
  /** A fresh connection (no keep-alive agent). */
  fresh?: boolean;
}

/** One request, whole body as text; rejects on network errors and after timeoutMs (default 30 s). */
export function fetchText(target: Target, path: string, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, target.base);
    const req = httpsRequest(
      url,
      {
        method: options.method ?? 'GET',
        headers: { ...(options.body !== undefined ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}), ...options.headers },
        ...(options.fresh ? { ca: target.ca, agent: false } : { agent: agentFor(target.ca) }),
        timeout: options.timeoutMs ?? 30_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${options.method ?? 'GET'} ${path} timed out after ${options.timeoutMs ?? 30_000} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

export async function fetchJson<T = unknown>(
  target: Target,
  path: string,
  options: RequestOptions = {},
): Promise<{ status: number; json: T; headers: IncomingHttpHeaders }> {
  const r = await fetchText(target, path, { ...options, headers: { accept: 'application/json', ...options.headers } });
  let json: T;
  try {
    json = JSON.parse(r.body) as T;
  } catch {
    throw new Error(`${path}: expected JSON, got HTTP ${r.status}: ${r.body.slice(0, 200)}`);
  }
  return { status: r.status, json, headers: r.headers };
}

/** Starts a request and hands over the response (for streams); rejects on errors before the headers. */
export function openStream(
  target: Target,
  path: string,
  options: RequestOptions & { agent?: Agent | false } = {},
): Promise<{ res: IncomingMessage; destroy: () => void }> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, target.base);
    const req = httpsRequest(url, {
      method: options.method ?? 'GET',
      headers: options.headers,
      ca: target.ca,
      agent: options.agent ?? false,
      timeout: options.timeoutMs ?? 30_000,
    });
    req.on('timeout', () => req.destroy(new Error(`${path}: no response within ${options.timeoutMs ?? 30_000} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      req.setTimeout(0);
      resolve({ res, destroy: () => req.destroy() });
    });
    req.end(options.body);
  });
}

/** Thrown from a pollUntil check: stop polling at once (other errors are retried). */
export class StopPolling extends Error {}

/** Polls `check` until it returns a value other than undefined, at most `timeoutMs`. */
export async function pollUntil<T>(what: string, timeoutMs: number, intervalMs: number, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (error) {
      if (error instanceof StopPolling) throw error;
      lastError = error;
    }
    if (performance.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)})` : ''}`,
      );
    }
    await delay(intervalMs);
  }
}

/** Bounded wait on a promise. */
export async function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Wall-clock time in ms with sub-ms resolution (for comparing with `date +%s%N` in scripts). */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}
