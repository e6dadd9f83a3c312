// Runs the real `armhook serve` CLI as a separate process (restart, SIGKILL and SIGTERM tests),
// and small process utilities: is a pid gone, wait for a process to exit.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { access, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { writeSharedTestPki } from './shared-pki.ts';

const MAIN = join(import.meta.dirname, '..', '..');
/** The bundled Node 24 runtime; never the system node. */
export const NODE = join(MAIN, 'node_modules', '.bin', 'node');
export const CLI = join(MAIN, 'server', 'cli', 'main.ts');

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  /** https://127.0.0.1:<port> as the server logged it. */
  url: string;
  ca: string;
  caPath: string;
  pid: number;
  root: string;
  scriptsDir: string;
  dataDir: string;
  markerDir: string;
  child: ChildProcess;
  /** Parsed JSON log lines the server wrote to stdout so far. */
  logs(): LogLine[];
  stderr(): string;
  /** Resolves on the first log line (already written or still to come) that satisfies `predicate`; rejects if the process exits first. */
  waitForLog(predicate: (line: LogLine) => boolean): Promise<LogLine>;
  /** Resolves when the process has exited (at once if it already has). */
  exited: Promise<Exit>;
  signal(signal: NodeJS.Signals): void;
  /** A signal to every process of the server's group (needs `ownGroup`): the server and its spawn helper. */
  signalGroup(signal: NodeJS.Signals): void;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<Exit>;
}

export interface ProcessOptions {
  /** Script path under scripts/ → content ($ARMHOOK_TEST_MARKERS is replaced by the marker dir). */
  scripts?: Record<string, string>;
  /** Extra ARMHOOK_* variables (ARMHOOK_WORKERS, ARMHOOK_DRAIN_TIMEOUT...). */
  env?: Record<string, string>;
  /** Reuse a directory (a restart on the same data dir); a new temp dir otherwise. */
  root?: string;
  /** Run the bundled dist/main.js (what npm start and systemd run) instead of the TypeScript source. */
  dist?: boolean;
  /** No certificate given: the server generates its dev certificate (under <root>/tls), which becomes `ca`. */
  devCert?: boolean;
  /** Its own process group (as under a shell's job control or timeout(1)), so signalGroup can reach all of it. */
  ownGroup?: boolean;
}

export const DIST_CLI = join(MAIN, 'dist', 'main.js');
/**
 * Node's compile cache for the armhook processes tests start, when the run has one (npm test sets
 * it): each of them would otherwise compile every server/ module again.
 */
export const COMPILE_CACHE_ENV: Record<string, string> = process.env['NODE_COMPILE_CACHE'] ? { NODE_COMPILE_CACHE: process.env['NODE_COMPILE_CACHE'] } : {};

/** A script line that records that it ran. */
export function markerLine(name: string): string {
  return `touch "$ARMHOOK_TEST_MARKERS/${name}"`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** A fresh root directory for `startServerProcess` (scripts, data, markers, pki). */
export async function newRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'armhook-proc-'));
}

/**
 * Starts `node server/cli/main.ts serve` on 127.0.0.1:0 and resolves once it logged
 * "armhook listening on <url>". The CA is created once per root, so a restart on the same root
 * keeps the same trust anchor.
 */
export async function startServerProcess(options: ProcessOptions = {}): Promise<ServerProcess> {
  const root = options.root ?? (await newRoot());
  const scriptsDir = join(root, 'scripts');
  const dataDir = join(root, 'data');
  const markerDir = join(root, 'markers');
  const pkiDir = join(root, 'pki');
  await mkdir(scriptsDir, { recursive: true });
  await mkdir(markerDir, { recursive: true });
  await mkdir(pkiDir, { recursive: true });
  for (const [path, content] of Object.entries(options.scripts ?? {})) {
    const file = join(scriptsDir, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content.replaceAll('$ARMHOOK_TEST_MARKERS', markerDir));
    await chmod(file, 0o755);
  }
  const paths = options.devCert
    ? { caPath: join(root, 'tls', 'dev-cert.pem'), certPath: undefined, keyPath: undefined }
    : { caPath: join(pkiDir, 'ca.pem'), certPath: join(pkiDir, 'cert.pem'), keyPath: join(pkiDir, 'key.pem') };
  if (paths.keyPath && !(await exists(paths.keyPath))) await writeSharedTestPki(pkiDir);

  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? root,
    LANG: 'C.UTF-8',
    ARMHOOK_LISTEN: '127.0.0.1:0',
    ARMHOOK_SCRIPTS_DIR: scriptsDir,
    ARMHOOK_DATA_DIR: dataDir,
    ...(paths.certPath && paths.keyPath ? { ARMHOOK_TLS_CERT: paths.certPath, ARMHOOK_TLS_KEY: paths.keyPath } : {}),
    ARMHOOK_TLS_DIR: join(root, 'tls'),
    ARMHOOK_LOG_LEVEL: 'info',
    ...COMPILE_CACHE_ENV,
    ...options.env,
  };
  const child = spawn(NODE, [options.dist ? DIST_CLI : CLI, 'serve'], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.ownGroup === true,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn the armhook CLI');

  const lines: LogLine[] = [];
  let stderr = '';
  let partial = '';
  const watchers = new Set<() => void>();
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
      for (const w of [...watchers]) w();
    });
  });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    partial += chunk;
    let newline: number;
    while ((newline = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, newline);
      partial = partial.slice(newline + 1);
      if (text.trim() === '') continue;
      try {
        lines.push(JSON.parse(text) as LogLine);
      } catch {
        lines.push({ level: 0, msg: text });
      }
    }
    for (const w of [...watchers]) w();
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });

  const waitForLog = (predicate: (line: LogLine) => boolean): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = lines.find(predicate);
        if (found) {
          watchers.delete(check);
          resolve(found);
        } else if (exit) {
          watchers.delete(check);
          reject(
            new Error(
              `armhook exited (${JSON.stringify(exit)}) before the expected log line.\nstderr: ${stderr}\nstdout: ${lines.map((l) => l.msg).join('\n')}`,
            ),
          );
        }
      };
      watchers.add(check);
      check();
    });

  const listening = await waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith('armhook listening on'));
  const url = typeof listening.url === 'string' ? listening.url : listening.msg.slice('armhook listening on '.length).trim();
  const ca = await readFile(paths.caPath, 'utf8');

  return {
    url,
    ca,
    caPath: paths.caPath,
    pid,
    root,
    scriptsDir,
    dataDir,
    markerDir,
    child,
    logs: () => [...lines],
    stderr: () => stderr,
    waitForLog,
    exited,
    signal(signal) {
      if (!exit) child.kill(signal);
    },
    signalGroup(signal) {
      if (!options.ownGroup) throw new Error("signalGroup needs ownGroup: the server shares the test runner's group");
      process.kill(-pid, signal);
    },
    async kill() {
      if (!exit) child.kill('SIGKILL');
      return exited;
    },
  };
}

/** Removes a root made by `newRoot` / `startServerProcess`. */
export async function removeRoot(root: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
}

/**
 * True when `pid` no longer runs: `kill -0` fails (ESRCH), or the process is a zombie (it has
 * exited and only waits for its parent — here often PID 1 of the sandbox — to collect it).
 */
export function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
    throw err;
  }
  return zombie(pid);
}

function zombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  return state === 'Z' || state === 'X';
}

/**
 * Resolves true once `pid` is gone, false if it still runs after `tries` checks. Used only after
 * the event that should have killed it (a done event, a restart): the loop covers the kernel
 * finishing the exit of a process that was already signalled, not a wait for the server.
 */
export async function waitGone(pid: number, tries = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (isGone(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return isGone(pid);
}

/** Creates the file a blocked test script waits for (`while [ ! -e "$ARMHOOK_TEST_MARKERS/<name>" ]`). */
export async function release(markerDir: string, name: string): Promise<void> {
  await writeFile(join(markerDir, name), '');
}

/** A shell loop (inside a script) that blocks until the test calls `release(markerDir, name)`. */
export function gateLine(name: string): string {
  return `while [ ! -e "$ARMHOOK_TEST_MARKERS/${name}" ]; do sleep 0.05; done`;
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `armhook check` as a child process in `cwd`, with only PATH, HOME (= cwd) and `env`: the
 * environment an operator's shell would give it, none of the test runner's (but Node's compile cache).
 */
export function runCheck(cwd: string, env: Record<string, string>): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      NODE,
      [CLI, 'check'],
      { cwd, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: cwd, ...COMPILE_CACHE_ENV, ...env }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
