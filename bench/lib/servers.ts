/**
 * The two servers under test, started as separate processes on loopback with one self-signed
 * certificate, plus the fixtures they share (hook scripts, gates) and the IMDS/ARM fakes.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashPassword } from '../../server/auth/passwd.ts';
import { startArmFake, type ArmFake } from '../../test/fakes/arm.ts';
import { startEntraFake, type EntraFake } from '../../test/fakes/entra.ts';
import { startImdsFake, type ImdsFake } from '../../test/fakes/imds.ts';
import { createTestPki } from '../../test/helpers/certs.ts';
import type { BenchConfig } from './config.ts';
import { fetchText, pollUntil, StopPolling, type Target } from './http.ts';
import { cmdline, cpuByProcess, cpuMs, freePort, rss, run, startProc, stopProc, type Proc, type RssSample } from './procs.ts';

/** 79 characters + newline: the streaming scenarios' line. */
export const STREAM_LINE = 'armhook bench line: the quick brown fox jumps over the lazy dog 0123456789 abcde';

export interface Fixtures {
  tmp: string;
  certFile: string;
  keyFile: string;
  cert: string;
  scriptsDir: string;
  /** The hold scripts (scenario 7) wait for this file. */
  holdGate: string;
  hooksJson: string;
  logsDir: string;
  /** An htpasswd file with one bcrypt user (BENCH_USER), for the runs that authenticate. */
  htpasswd: string;
}

/** The user the authenticated runs send (bcrypt, cost 10: what `armhook passwd` writes). */
export const BENCH_USER = { name: 'bench', password: 'bench-password' } as const;

/** armhook settings that accept the Entra fake's tokens (the fakes' CA trusted at process start). */
export function entraEnv(fakes: Fakes): Record<string, string> {
  return {
    ARMHOOK_ENTRA_TENANT: fakes.entra.tenant,
    ARMHOOK_ENTRA_AUDIENCE: fakes.entra.audience,
    ARMHOOK_ENTRA_AUTHORITY: fakes.entra.url,
    NODE_EXTRA_CA_CERTS: fakes.caFile,
  };
}

/** The Authorization header of BENCH_USER. */
export function benchBasicAuth(): string {
  return `Basic ${Buffer.from(`${BENCH_USER.name}:${BENCH_USER.password}`).toString('base64')}`;
}

export async function makeFixtures(tmp: string): Promise<Fixtures> {
  const tlsDir = join(tmp, 'tls');
  const scriptsDir = join(tmp, 'scripts');
  const logsDir = join(tmp, 'logs');
  const gatesDir = join(tmp, 'gates');
  for (const d of [tlsDir, scriptsDir, logsDir, gatesDir]) mkdirSync(d, { recursive: true });
  const certFile = join(tlsDir, 'cert.pem');
  const keyFile = join(tlsDir, 'key.pem');
  const ssl = await run(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { timeoutMs: 20_000 },
  );
  if (ssl.code !== 0) throw new Error(`openssl failed: ${ssl.stderr}`);
  const holdGate = join(gatesDir, 'release-hold');
  const scripts: Record<string, string> = {
    // Scenario 1 (and the warm-up of others): one line.
    'echo.sh': '#!/bin/sh\necho hello\n',
    // Scenarios 3 and 4: $bytes bytes of 80-character lines.
    'stream.sh': `#!/bin/sh\nyes '${STREAM_LINE}' | head -c "\${bytes:-1000}"\n`,
    // Scenario 5: waits (bounded) for the $gate file, then prints $lines lines 0.1 s apart, each with its emit time in ns.
    'ticker.sh': [
      '#!/bin/sh',
      'i=0',
      'while [ ! -e "$gate" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done',
      'n=0',
      'while [ $n -lt "${lines:-10}" ]; do',
      '  echo "tick $n $(date +%s%N)"',
      '  n=$((n+1))',
      '  sleep 0.1',
      'done',
      '',
    ].join('\n'),
    // Scenario 7: runs until the gate file appears (at most 120 s).
    'hold.sh': `#!/bin/sh\ni=0\nwhile [ ! -e '${holdGate}' ] && [ $i -lt 240 ]; do sleep 0.5; i=$((i+1)); done\necho released\n`,
  };
  for (const [name, text] of Object.entries(scripts)) {
    const file = join(scriptsDir, name);
    writeFileSync(file, text);
    chmodSync(file, 0o755);
  }
  const hooksJson = join(tmp, 'hooks.json');
  writeFileSync(
    hooksJson,
    JSON.stringify(
      ['echo', 'hold'].map((id) => ({
        id,
        'execute-command': join(scriptsDir, `${id}.sh`),
        'command-working-directory': scriptsDir,
        'include-command-output-in-response': true,
        'http-methods': ['POST'],
      })),
      null,
      2,
    ),
  );
  const htpasswd = join(tmp, 'htpasswd');
  writeFileSync(htpasswd, `${BENCH_USER.name}:${await hashPassword(BENCH_USER.password)}\n`);
  return { tmp, certFile, keyFile, cert: readFileSync(certFile, 'utf8'), scriptsDir, holdGate, hooksJson, logsDir, htpasswd };
}

// ---- fakes -------------------------------------------------------------------------------

export interface Fakes {
  imds: ImdsFake;
  arm: ArmFake;
  /** An Entra ID tenant (OpenID configuration + JWKS) for bearer-token runs. */
  entra: EntraFake;
  /** The CA of the HTTPS fakes (ARM, Entra). */
  caFile: string;
  close(): Promise<void>;
}

/** The IMDS fake and the HTTPS ARM fake (test/fakes), in this process, with a few resource groups. */
export async function startFakes(tmp: string): Promise<Fakes> {
  const imds = await startImdsFake();
  const pki = await createTestPki(['127.0.0.1']);
  const arm = await startArmFake({ cert: pki.serverCert, key: pki.serverKey, subscriptionId: imds.compute.subscriptionId });
  for (const name of ['runner-rg', 'app-rg', 'data-rg']) arm.addGroup(name, 'westeurope', { owner: 'bench' });
  const entra = await startEntraFake({ cert: pki.serverCert, key: pki.serverKey });
  const caFile = join(tmp, 'arm-ca.pem');
  writeFileSync(caFile, pki.caCert);
  // The fake records every request; under load that list would only grow.
  const trim = setInterval(() => {
    arm.requests.length = 0;
    imds.tokenRequests.length = 0;
  }, 1000);
  trim.unref();
  return {
    imds,
    arm,
    entra,
    caFile,
    async close() {
      clearInterval(trim);
      await entra.close();
      await arm.close();
      await imds.close();
    },
  };
}

// ---- servers -----------------------------------------------------------------------------

export interface RunningServer {
  kind: 'armhook' | 'webhook';
  name: string;
  proc: Proc;
  target: Target;
  /** The URL path that runs the echo hook. */
  echoPath: string;
  /** ms from spawn() to the first 200 of the readiness probe. */
  startMs: number;
  /** armhook: 'dist' (compiled) or 'source' (TypeScript, dist stale); webhook: its binary. */
  entry: string;
  dataDir?: string;
  rss(): RssSample;
  cpuMs(): number;
  cpuByProcess(): Array<{ pid: number; command: string; ms: number }>;
  stop(): Promise<void>;
}

let serial = 0;

function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'USER', 'LOGNAME']) if (process.env[k] !== undefined) env[k] = process.env[k];
  // Experiments with V8 flags on armhook (BENCH_PROFILE's --cpu-prof adds to them).
  if (process.env['BENCH_NODE_OPTIONS']) env['NODE_OPTIONS'] = process.env['BENCH_NODE_OPTIONS'];
  return env;
}

async function waitHealthy(proc: Proc, target: Target, path: string, timeoutMs: number): Promise<number> {
  let exited: number | string | undefined;
  void proc.exited.then((c) => (exited = c));
  return pollUntil(`${proc.name} to answer GET ${path}`, timeoutMs, 3, async () => {
    if (exited !== undefined) throw new StopPolling(exitMessage(proc, exited, path));
    try {
      const r = await fetchText(target, path, { fresh: true, timeoutMs: 2000 });
      return r.status === 200 ? performance.now() - proc.spawnedAt : undefined;
    } catch (error) {
      if (exited !== undefined) throw new StopPolling(exitMessage(proc, exited, path));
      throw error;
    }
  });
}

/** "<name> exited (code) before answering <path>: <its last words>" and then the log's tail. */
function exitMessage(proc: Proc, code: number | string, path: string): string {
  const lines = tail(proc.logFile, 30)
    .split('\n')
    .filter((l) => l.trim() !== '');
  const last = [...lines].reverse().find((l) => /^\S+: /.test(l) && !l.startsWith('{') && !/^\s+at /.test(l)) ?? lines.at(-1) ?? '(no output)';
  return `${proc.name} exited (${code}) before answering GET ${path}: ${last}\n--- ${proc.logFile}:\n${lines.slice(-15).join('\n')}`;
}

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface ArmhookOptions {
  workers: number;
  queue?: number;
  fakes: Fakes;
  /** Wait for GET /readyz 200 too (identity and metadata obtained from the fakes). */
  waitReady?: boolean;
  env?: Record<string, string>;
}

export async function startArmhook(config: BenchConfig, fx: Fixtures, name: string, options: ArmhookOptions): Promise<RunningServer> {
  const port = await freePort();
  const dataDir = join(fx.tmp, `data-${++serial}-${name}`);
  mkdirSync(dataDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...baseEnv(),
    ARMHOOK_LISTEN: `127.0.0.1:${port}`,
    ARMHOOK_SCRIPTS_DIR: fx.scriptsDir,
    ARMHOOK_DATA_DIR: dataDir,
    ARMHOOK_TLS_CERT: fx.certFile,
    ARMHOOK_TLS_KEY: fx.keyFile,
    ARMHOOK_LOG_LEVEL: 'warn',
    ARMHOOK_WORKERS: String(options.workers),
    ARMHOOK_QUEUE: String(options.queue ?? 100),
    ARMHOOK_RETENTION_MAX: String(config.retentionMax),
    ARMHOOK_DRAIN_TIMEOUT: '3',
    ARMHOOK_KILL_GRACE: '2',
    ARMHOOK_IMDS_ENDPOINT: options.fakes.imds.url,
    ARMHOOK_ARM_ENDPOINT: options.fakes.arm.url,
    ARMHOOK_ARM_CA_FILE: options.fakes.caFile,
    ...options.env,
  };
  const proc = startProc(`armhook[${name}]`, join(config.root, 'bin', 'armhook'), ['serve'], {
    env,
    cwd: fx.tmp,
    logFile: join(fx.logsDir, `armhook-${serial}-${name}.log`),
  });
  const target: Target = { base: `https://127.0.0.1:${port}`, ca: fx.cert };
  const server: RunningServer = {
    kind: 'armhook',
    name,
    proc,
    target,
    echoPath: '/echo',
    startMs: 0,
    entry: '',
    dataDir,
    rss: () => rss(proc.pid, fx.scriptsDir),
    cpuMs: () => cpuMs(proc.pid, fx.scriptsDir),
    cpuByProcess: () => cpuByProcess(proc.pid, fx.scriptsDir),
    stop: () => stopProc(proc),
  };
  try {
    server.startMs = await waitHealthy(proc, target, '/healthz', 20_000);
    const cmd = cmdline(proc.pid);
    server.entry = cmd.includes('dist/main.js') ? 'dist' : cmd.includes('server/cli/main.ts') ? 'source' : cmd;
    if (options.waitReady) {
      await pollUntil(`${proc.name} GET /readyz 200 (identity from the IMDS fake)`, 30_000, 50, async () => {
        const r = await fetchText(target, '/readyz', { timeoutMs: 5000 });
        return r.status === 200 ? true : undefined;
      });
    }
  } catch (error) {
    await stopProc(proc, { graceMs: 2000 });
    throw error;
  }
  return server;
}

export async function startWebhook(fx: Fixtures, name: string): Promise<RunningServer> {
  const port = await freePort();
  const proc = startProc(
    `webhook[${name}]`,
    'webhook',
    ['-hooks', fx.hooksJson, '-ip', '127.0.0.1', '-port', String(port), '-secure', '-cert', fx.certFile, '-key', fx.keyFile],
    { env: baseEnv(), cwd: fx.tmp, logFile: join(fx.logsDir, `webhook-${++serial}-${name}.log`) },
  );
  const target: Target = { base: `https://127.0.0.1:${port}`, ca: fx.cert };
  const server: RunningServer = {
    kind: 'webhook',
    name,
    proc,
    target,
    echoPath: '/hooks/echo',
    startMs: 0,
    entry: '/usr/bin/webhook',
    rss: () => rss(proc.pid, fx.scriptsDir),
    cpuMs: () => cpuMs(proc.pid, fx.scriptsDir),
    cpuByProcess: () => cpuByProcess(proc.pid, fx.scriptsDir),
    stop: () => stopProc(proc),
  };
  try {
    // webhook has no health endpoint; its root path answers 200 "OK" once it listens.
    server.startMs = await waitHealthy(proc, target, '/', 20_000);
  } catch (error) {
    await stopProc(proc, { graceMs: 2000 });
    throw error;
  }
  return server;
}
