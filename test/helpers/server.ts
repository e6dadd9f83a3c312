// Starts real armhook servers on loopback for tests, and talks to them over real TLS sockets.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { buildApp, type AppOptions, type Armhook } from '../../server/app.ts';
import { loadConfig, type Config } from '../../server/config/index.ts';
import { captureLog, type CapturedLog } from './log.ts';
import { writeSharedTestPki } from './shared-pki.ts';

export interface TestServer {
  /** https://localhost:<port> */
  url: string;
  port: number;
  caPath: string;
  ca: string;
  root: string;
  scriptsDir: string;
  dataDir: string;
  /** Scripts created with `marker(...)` touch files here; tests prove a script did not run by their absence. */
  markerDir: string;
  config: Config;
  armhook: Armhook;
  logs: CapturedLog;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Script path under scripts/ → content; made executable unless the path ends in "!noexec". */
  scripts?: Record<string, string>;
  config?: Partial<Config>;
  /** Reuse a directory (restart tests); a new temp dir otherwise. */
  root?: string;
  /** Extra Azure options (fast LRO polling, retries) for tests against the IMDS/ARM fakes. */
  azure?: AppOptions['azure'];
  /** Entra options (the fake tenant's CA). */
  entra?: AppOptions['entra'];
  /**
   * Failed authentications per address before 429. Tests send many wrong credentials from
   * 127.0.0.1 on purpose, so the default here is high; 'product' keeps armhook's own limit.
   */
  failureLimit?: AppOptions['failureLimit'] | 'product';
  /** Back-off after failed ACME attempts (milliseconds in tests). */
  acmeRetry?: AppOptions['acmeRetry'];
}

/** A script line that records that it ran (use in every script a test expects NOT to run). */
export function markerLine(name: string): string {
  return `touch "$ARMHOOK_TEST_MARKERS/${name}"`;
}

/** A server built from the test config but not listening: for in-process requests (`app.inject`). */
export type TestApp = Omit<TestServer, 'url' | 'port'>;

export async function buildServer(options: StartOptions = {}): Promise<TestApp> {
  const root = options.root ?? (await mkdtemp(join(tmpdir(), 'armhook-test-')));
  const scriptsDir = join(root, 'scripts');
  const dataDir = join(root, 'data');
  const markerDir = join(root, 'markers');
  await mkdir(scriptsDir, { recursive: true });
  await mkdir(markerDir, { recursive: true });
  for (const [path, content] of Object.entries(options.scripts ?? {})) {
    const noexec = path.endsWith('!noexec');
    const file = join(scriptsDir, noexec ? path.slice(0, -'!noexec'.length) : path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content.replaceAll('$ARMHOOK_TEST_MARKERS', markerDir));
    await chmod(file, noexec ? 0o644 : 0o755);
  }
  await mkdir(join(root, 'pki'), { recursive: true });
  const pki = await writeSharedTestPki(join(root, 'pki'));
  const config = loadConfig({
    env: {},
    cwd: root,
    overrides: {
      listen: { host: '127.0.0.1', port: 0 },
      scriptsDir,
      dataDir,
      tlsCert: pki.certPath,
      tlsKey: pki.keyPath,
      tlsDir: join(root, 'tls'),
      logLevel: 'debug',
      killGrace: 2,
      drainTimeout: 5,
      // Off Azure: a closed loopback port answers at once, so readiness says so without a wait.
      imdsEndpoint: 'http://127.0.0.1:9',
      ...options.config,
    },
  });
  const logs = captureLog();
  const armhook = await buildApp(config, {
    log: logs.log,
    ...(options.azure ? { azure: options.azure } : {}),
    ...(options.entra ? { entra: options.entra } : {}),
    ...(options.acmeRetry ? { acmeRetry: options.acmeRetry } : {}),
    ...(options.failureLimit === 'product' ? {} : { failureLimit: options.failureLimit ?? { max: 100_000, windowMs: 60_000 } }),
  });
  return {
    caPath: pki.caPath,
    ca: pki.caCert,
    root,
    scriptsDir,
    dataDir,
    markerDir,
    config,
    armhook,
    logs,
    async close() {
      await armhook.close();
      if (!options.root) await rm(root, { recursive: true, force: true });
    },
  };
}

export async function startServer(options: StartOptions = {}): Promise<TestServer> {
  const built = await buildServer(options);
  const listening = await built.armhook.listen();
  const port = Number(new URL(listening).port);
  return { ...built, url: `https://localhost:${port}`, port };
}

export interface Response {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
  json<T = any>(): T;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** user:password */
  auth?: string;
}

/** Opens a request and returns the response as soon as its headers arrive (the body can be read as a stream). */
export function open(server: Pick<TestServer, 'url' | 'ca'>, path: string, options: RequestOptions = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${server.url}${path}`,
      { method: options.method ?? 'GET', headers: options.headers, ca: server.ca, auth: options.auth, agent: false },
      resolve,
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A whole request/response. */
export async function fetchText(server: Pick<TestServer, 'url' | 'ca'>, path: string, options: RequestOptions = {}): Promise<Response> {
  const res = await open(server, path, options);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks).toString('utf8');
  return { status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) };
}

export interface CurlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Real curl, trusting the test CA. */
export function curl(server: Pick<TestServer, 'caPath'>, args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--no-buffer', '--cacert', server.caPath, ...args], { maxBuffer: 256 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

/** Parses an SSE stream the way the spec says a client must (fields, multi-line data, comments). */
export function parseSse(text: string): { events: SseEvent[]; comments: string[] } {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let id: string | undefined;
  let event = '';
  let data: string[] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data.length > 0) events.push({ id, event: event || 'message', data: data.join('\n') });
      event = '';
      data = [];
      id = undefined;
      continue;
    }
    if (line.startsWith(':')) {
      comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id') id = value;
  }
  return { events, comments };
}

/** Reads a response until `predicate` holds for the text so far; returns that text. Never waits on a clock. */
export async function readUntil(res: IncomingMessage, predicate: (text: string) => boolean): Promise<string> {
  let text = '';
  for await (const chunk of res) {
    text += (chunk as Buffer).toString('utf8');
    if (predicate(text)) return text;
  }
  return text;
}

// ---- helpers for the end-to-end acceptance tests (test/http/*) ----

/** True when the script that owns marker `name` (see markerLine) ran. */
export function markerExists(server: Pick<TestServer, 'markerDir'>, name: string): boolean {
  return existsSync(join(server.markerDir, name));
}

/** Asserts a `{ error, message }` JSON error with this status (and code, when given); returns the parsed body. */
export function assertJsonError(res: Response, status: number, code?: string): { error: string; message: string } {
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${res.body.slice(0, 500)}`);
  assert.match(String(res.headers['content-type'] ?? ''), /^application\/json/, `a JSON error (content-type was ${String(res.headers['content-type'])})`);
  const body = res.json<{ error: unknown; message: unknown }>();
  assert.equal(typeof body.error, 'string', `error code in ${res.body}`);
  assert.equal(typeof body.message, 'string', `message in ${res.body}`);
  assert.ok((body.message as string).length > 0, 'a message that says what to do');
  if (code !== undefined) assert.equal(body.error, code, res.body);
  assert.ok(!/\bat .+\.ts:\d+/.test(res.body), 'never a stack trace');
  return body as { error: string; message: string };
}

/** Every job record the server holds (GET /jobs, newest first). */
export async function listJobs(server: Pick<TestServer, 'url' | 'ca'>, options: { hook?: string; auth?: string } = {}): Promise<Array<Record<string, any>>> {
  const query = new URLSearchParams({ limit: '500' });
  if (options.hook !== undefined) query.set('hook', options.hook);
  const res = await fetchText(server, `/jobs?${query.toString()}`, options.auth !== undefined ? { auth: options.auth } : {});
  assert.equal(res.status, 200, res.body);
  return res.json<{ items: Array<Record<string, any>> }>().items;
}

/**
 * Proves nothing ran: the script's marker file is absent and the number of jobs did not change
 * (a job is recorded the moment it is accepted, so a refused request that started one would show).
 */
export async function assertNothingRan(server: TestServer, marker: string, jobsBefore: number, auth?: string): Promise<void> {
  assert.ok(!markerExists(server, marker), `script with marker ${marker} must not have run`);
  const jobs = await listJobs(server, auth !== undefined ? { auth } : {});
  assert.equal(jobs.length, jobsBefore, 'no job was started');
}

/**
 * A process is gone when it no longer exists or is a zombie (dead, waiting to be reaped: an
 * orphaned grandchild is reparented to PID 1, which in some containers never reaps).
 */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export interface StreamReader {
  /** Everything received so far (decoded as UTF-8, characters split across chunks kept whole). */
  readonly text: string;
  /** Raw bytes received so far. */
  readonly bytes: Buffer;
  readonly ended: boolean;
  /** Resolves with the text once `predicate` holds; rejects if the stream ends first. Never waits on a clock. */
  until(predicate: (text: string) => boolean): Promise<string>;
  /** Resolves with the whole text once the response ends. */
  end(): Promise<string>;
}

/** Reads a response incrementally; unlike readUntil it can be asked again and again, and never destroys the response. */
export function streamReader(res: IncomingMessage): StreamReader {
  const decoder = new StringDecoder('utf8');
  const chunks: Buffer[] = [];
  let text = '';
  let ended = false;
  let failure: Error | undefined;
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  res.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    text += decoder.write(chunk);
    wake();
  });
  res.on('end', () => {
    text += decoder.end();
    ended = true;
    wake();
  });
  res.on('error', (err) => {
    failure = err;
    ended = true;
    wake();
  });
  res.on('close', () => {
    ended = true;
    wake();
  });
  const until = async (predicate: (text: string) => boolean): Promise<string> => {
    for (;;) {
      if (predicate(text)) return text;
      if (ended)
        throw new Error(`the stream ended before the awaited condition held${failure ? ` (${failure.message})` : ''}; it carried:\n${text.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          waiters.delete(done);
          resolve();
        };
        waiters.add(done);
      });
    }
  };
  return {
    get text() {
      return text;
    },
    get bytes() {
      return Buffer.concat(chunks);
    },
    get ended() {
      return ended;
    },
    until,
    end: () => until(() => ended),
  };
}

/** The `done` record of an SSE run (asserts there is exactly one, and that it is the last event). */
export function doneRecord(events: SseEvent[]): Record<string, any> {
  const done = events.filter((e) => e.event === 'done');
  assert.equal(done.length, 1, `exactly one done event, got ${done.length}`);
  assert.equal(events.at(-1)?.event, 'done', 'done is the last event');
  return JSON.parse(done[0]?.data ?? '{}') as Record<string, any>;
}

/** Real curl with `-i`: status, headers (lower-case names) and body, like fetchText. */
export async function curlResponse(server: Pick<TestServer, 'caPath'>, args: string[]): Promise<Response & { code: number | null; stderr: string }> {
  const result = await curl(server, ['-i', ...args]);
  let rest = result.stdout;
  let head: string;
  // Skip interim responses (100 Continue) and take the final one.
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) {
      head = rest;
      rest = '';
      break;
    }
    head = rest.slice(0, end);
    rest = rest.slice(end + 4);
    if (!/^HTTP\/[\d.]+ 1\d\d/.test(head)) break;
  }
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { code: result.code, stderr: result.stderr, status, headers, body: rest, json: () => JSON.parse(rest) };
}

/** Live (non-zombie) processes in a process group, from /proc. */
export function processGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state !== 'Z' && Number(pgrp) === pgid) members.push(Number(entry));
  }
  return members;
}

/** Every file under a directory, concatenated (for "this value is stored nowhere" checks). */
export async function readTree(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) parts.push(await readFile(join(entry.parentPath, entry.name)));
  }
  return Buffer.concat(parts);
}
