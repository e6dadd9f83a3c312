// Starts real armhook servers on loopback for tests, and talks to them over real TLS sockets.
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildApp, type Armhook } from '../../server/app.ts';
import { loadConfig, type Config } from '../../server/config/index.ts';
import { captureLog, type CapturedLog } from './log.ts';
import { writeTestPki } from './certs.ts';

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
}

/** A script line that records that it ran (use in every script a test expects NOT to run). */
export function markerLine(name: string): string {
  return `touch "$ARMHOOK_TEST_MARKERS/${name}"`;
}

export async function startServer(options: StartOptions = {}): Promise<TestServer> {
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
  const pki = await writeTestPki(join(root, 'pki'));
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
      ...options.config,
    },
  });
  const logs = captureLog();
  const armhook = await buildApp(config, { log: logs.log });
  const listening = await armhook.listen();
  const port = Number(new URL(listening).port);
  return {
    url: `https://localhost:${port}`,
    port,
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
