/**
 * Shared set-up of the Azure tests: the IMDS fake (one per test process: the identity library
 * keeps its IMDS host and token cache per process), the HTTPS ARM fake with a test CA, and an
 * AzureService pointed at both, with fast LRO polling and fast SDK retries.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { createAzure, type AzureOptions, type AzureService, type TypedHandler } from '../../server/azure/index.ts';
import type { AppError } from '../../server/errors.ts';
import { createTestPki, type TestPki } from '../helpers/certs.ts';
import { startArmFake, type ArmFake, type ArmFakeOptions } from '../fakes/arm.ts';
import { startImdsFake, type ImdsFake, type ImdsFakeOptions } from '../fakes/imds.ts';

export const POLL_MS = 2;

/** Waits (bounded) until the service's background retries, which run every few ms in tests, reach a state. */
export async function eventually(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (condition()) return;
    await sleep(5);
  }
  assert.fail(`not reached within 5 s: ${what}`);
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

export interface Collected {
  lines: string[];
  progress: Array<Record<string, unknown>>;
  /** lines and progress in the order they were emitted */
  events: Array<{ kind: 'line'; text: string } | { kind: 'progress'; data: Record<string, unknown> }>;
}

export type SinkEvent = Collected['events'][number];

export function collectingSink(onEvent?: (e: SinkEvent) => void): Collected & { sink: { line(t: string): void; progress(d: Record<string, unknown>): void } } {
  const c: Collected = { lines: [], progress: [], events: [] };
  const push = (e: SinkEvent): void => {
    c.events.push(e);
    onEvent?.(e);
  };
  return {
    ...c,
    sink: {
      line(text) {
        c.lines.push(text);
        push({ kind: 'line', text });
      },
      progress(data) {
        c.progress.push(data);
        push({ kind: 'progress', data });
      },
    },
  };
}

export interface RunOptions {
  body?: string | Buffer;
  signal?: AbortSignal;
  /** Called synchronously for every line/progress event, e.g. to abort at a precise point. */
  onEvent?: (e: SinkEvent) => void;
}

export interface RunOutcome extends Collected {
  result: unknown;
}

export interface AzureEnv {
  imds: ImdsFake;
  arm: ArmFake;
  pki: TestPki;
  azure: AzureService;
  handler(path: string): TypedHandler;
  /** Runs a handler like the job runner would; rejects with its AppError. */
  run(path: string, params?: Record<string, unknown>, options?: RunOptions): Promise<RunOutcome>;
  /** Like run, but resolves with the error (and what was emitted before it). */
  runFailing(path: string, params?: Record<string, unknown>, options?: RunOptions): Promise<Collected & { error: AppError }>;
  /**
   * Proves that a settled handler sends nothing more, by a later positive event instead of a
   * sleep: control operations with the same poll interval make `polls` polls, and no request
   * after `settledAt` repeats a path the subject used (from `from`) or names one of `names`.
   */
  assertQuietAfter(from: number, settledAt: number, names: readonly string[], polls?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startAzureEnv(
  options: {
    imds?: ImdsFakeOptions;
    arm?: Partial<Omit<ArmFakeOptions, 'cert' | 'key' | 'subscriptionId'>>;
    azure?: Partial<Omit<AzureOptions, 'imdsEndpoint' | 'armEndpoint' | 'log'>>;
    /** Wait until the service is ready (default true). */
    waitReady?: boolean;
  } = {},
): Promise<AzureEnv> {
  const imds = await startImdsFake(options.imds);
  const pki = await createTestPki(['127.0.0.1']);
  const arm = await startArmFake({ cert: pki.serverCert, key: pki.serverKey, subscriptionId: imds.compute.subscriptionId, ...options.arm });
  const azure = createAzure({
    imdsEndpoint: imds.url,
    armEndpoint: arm.url,
    armCaCert: pki.caCert,
    pollIntervalMs: POLL_MS,
    retry: { maxRetries: 2, retryDelayInMs: 1, maxRetryDelayInMs: 5 },
    startupRetry: { initialDelayMs: 5, maxDelayMs: 20 },
    log: silentLogger(),
    ...options.azure,
  });
  azure.start();
  if (options.waitReady !== false) await azure.whenReady();

  const loaded = await azure.loadHandlers();
  const handler = (path: string): TypedHandler => {
    const h = loaded.find((x) => x.path === path);
    if (!h) throw new Error(`no handler ${path}`);
    return h;
  };
  const run: AzureEnv['run'] = async (path, params = {}, o = {}) => {
    const c = collectingSink(o.onEvent);
    const result = await handler(path).run({
      params,
      clients: undefined,
      signal: o.signal ?? new AbortController().signal,
      sink: c.sink,
      log: silentLogger(),
      body: typeof o.body === 'string' ? Buffer.from(o.body) : (o.body ?? Buffer.alloc(0)),
    });
    return { result, lines: c.lines, progress: c.progress, events: c.events };
  };
  const runFailing: AzureEnv['runFailing'] = async (path, params = {}, o = {}) => {
    const c = collectingSink(o.onEvent);
    try {
      await handler(path).run({
        params,
        clients: undefined,
        signal: o.signal ?? new AbortController().signal,
        sink: c.sink,
        log: silentLogger(),
        body: typeof o.body === 'string' ? Buffer.from(o.body) : (o.body ?? Buffer.alloc(0)),
      });
    } catch (error) {
      return { error: error as AppError, lines: c.lines, progress: c.progress, events: c.events };
    }
    throw new Error(`${path} was expected to fail but succeeded`);
  };
  let controls = 0;
  const assertQuietAfter: AzureEnv['assertQuietAfter'] = async (from, settledAt, names, polls = 25) => {
    const subjectPaths = new Set(arm.requests.slice(from, settledAt).map((r) => r.path));
    arm.addGroup('quiet-control-rg');
    let seen = 0;
    while (seen < polls) {
      const name = `quiet-control-${++controls}`;
      arm.addVm('quiet-control-rg', name, { powerState: 'deallocated' });
      // Each poll answer is one progress event; where operations never finish, the control is stopped.
      const stop = new AbortController();
      const onEvent: RunOptions['onEvent'] = (e) => {
        if (e.kind === 'progress' && (e.data['status'] === 'running' || e.data['status'] === 'succeeded') && ++seen >= polls)
          stop.abort(new Error('control done'));
      };
      await run('azure/vms/start', { rg: 'quiet-control-rg', name }, { signal: stop.signal, onEvent }).catch((err: unknown) => {
        if (!stop.signal.aborted) throw err;
      });
    }
    const late = arm.requests.slice(settledAt).filter((r) => subjectPaths.has(r.path) || names.some((n) => r.path.includes(`/${n}`)));
    assert.deepEqual(
      late.map((r) => `${r.method} ${r.path}`),
      [],
      'requests of the settled handler',
    );
  };
  return {
    imds,
    arm,
    pki,
    azure,
    handler,
    run,
    runFailing,
    assertQuietAfter,
    async close() {
      azure.close();
      await arm.close();
      await imds.close();
    },
  };
}

// ---- the real server against the fakes (test/azure/server-*.test.ts) ----

/** Azure options for a real server under test: fast LRO polling, fast SDK and start-up retries. */
export const SERVER_AZURE_OPTIONS: Partial<Omit<AzureOptions, 'log'>> = {
  pollIntervalMs: 10,
  retry: { maxRetries: 2, retryDelayInMs: 1, maxRetryDelayInMs: 5 },
  startupRetry: { initialDelayMs: 5, maxDelayMs: 20 },
};

export interface AzureServerEnv {
  imds: ImdsFake;
  arm: ArmFake;
  pki: TestPki;
  /** The ARM fake's CA, as a PEM file (ARMHOOK_ARM_CA_FILE). */
  caFile: string;
  server: import('../helpers/server.ts').TestServer;
  close(): Promise<void>;
}

/**
 * A real armhook server (HTTPS, loopback) pointed at a fresh IMDS fake and HTTPS ARM fake. One
 * per test process (see startImdsFake). Waits until the server's Azure side is ready unless
 * `waitReady` is false.
 */
export async function startAzureServer(
  options: {
    imds?: ImdsFakeOptions;
    arm?: Partial<Omit<ArmFakeOptions, 'cert' | 'key' | 'subscriptionId'>>;
    scripts?: Record<string, string>;
    config?: Partial<import('../../server/config/index.ts').Config>;
    azure?: Partial<Omit<AzureOptions, 'log'>>;
    waitReady?: boolean;
    /** Stop the IMDS fake before the server starts (its port refuses connections until imds.up()). */
    imdsDown?: boolean;
  } = {},
): Promise<AzureServerEnv> {
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  // Loaded lazily: the handler-level tests that import this file don't need the whole server.
  const { startServer } = await import('../helpers/server.ts');
  const imds = await startImdsFake(options.imds);
  const pki = await createTestPki(['127.0.0.1']);
  const arm = await startArmFake({ cert: pki.serverCert, key: pki.serverKey, subscriptionId: imds.compute.subscriptionId, ...options.arm });
  const dir = await mkdtemp(join(tmpdir(), 'armhook-arm-ca-'));
  const caFile = join(dir, 'arm-ca.pem');
  await writeFile(caFile, pki.caCert);
  if (options.imdsDown) await imds.down();
  const server = await startServer({
    ...(options.scripts ? { scripts: options.scripts } : {}),
    config: { imdsEndpoint: imds.url, armEndpoint: arm.url, armCaFile: caFile, ...options.config },
    azure: { ...SERVER_AZURE_OPTIONS, ...options.azure },
  });
  if (options.waitReady !== false && !options.imdsDown) await server.armhook.azure.whenReady();
  return {
    imds,
    arm,
    pki,
    caFile,
    server,
    async close() {
      await server.close();
      await arm.close();
      await imds.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
