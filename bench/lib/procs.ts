/**
 * Processes the bench starts (servers, wrk, the static reference server): each in its own
 * process group so it can be stopped with everything it started; every wait is bounded. Plus
 * what /proc says about them (RSS, CPU time, children).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  /** performance.now() just before spawn(). */
  spawnedAt: number;
  /** Resolves with the exit code (or -signal number… as a string name) when the process ends. */
  exited: Promise<number | string>;
  logFile: string;
}

const running = new Set<Proc>();

export interface StartProcOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdout and stderr go here. */
  logFile: string;
}

export function startProc(name: string, command: string, args: string[], options: StartProcOptions): Proc {
  const fd = openSync(options.logFile, 'a');
  const spawnedAt = performance.now();
  let child: ChildProcess;
  try {
    child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', fd, fd],
      detached: true, // its own process group: stop() signals the group
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1));
    child.once('error', () => resolve(-1));
  });
  const proc: Proc = { name, pid: child.pid, child, spawnedAt, exited, logFile: options.logFile };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

export function isRunning(proc: Proc): boolean {
  return running.has(proc);
}

function signalGroup(proc: Proc, signal: NodeJS.Signals): void {
  try {
    process.kill(-proc.pid, signal);
  } catch {
    try {
      process.kill(proc.pid, signal);
    } catch {
      // already gone
    }
  }
}

/** SIGTERM (or `signal`), then SIGKILL to its group after `graceMs`. */
export async function stopProc(proc: Proc, options: { signal?: NodeJS.Signals; graceMs?: number } = {}): Promise<void> {
  if (!running.has(proc)) return;
  signalGroup(proc, options.signal ?? 'SIGTERM');
  const timer = delay(options.graceMs ?? 8000).then(() => 'timeout' as const);
  if ((await Promise.race([proc.exited, timer])) === 'timeout') {
    signalGroup(proc, 'SIGKILL');
    await Promise.race([proc.exited, delay(3000)]);
  }
}

/** Stops everything still running (end of run, errors, signals). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => stopProc(p, { graceMs: 3000 })));
}

/** Last resort on process exit: SIGKILL every group still running, synchronously. */
export function killAllNow(): void {
  for (const p of running) signalGroup(p, 'SIGKILL');
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs a command to completion (bounded), capturing its output. */
export function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number },
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid ?? 0), 'SIGKILL');
      } catch {
        // gone
      }
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, stdout, stderr });
    });
  });
}

/** A port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

// ---- /proc -------------------------------------------------------------------------------

/** VmRSS (or another kB field of /proc/<pid>/status) in bytes; 0 when the process is gone. */
export function statusBytes(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface Stat {
  pid: number;
  ppid: number;
  pgid: number;
  /** user + system CPU time, clock ticks */
  ticks: number;
}

function readStat(pid: number): Stat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[0] = state, [1] = ppid, [2] = pgrp, ... [11] = utime, [12] = stime
    return { pid, ppid: Number(rest[1]), pgid: Number(rest[2]), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return undefined;
  }
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

export function childrenOf(pid: number): number[] {
  return allPids().filter((p) => readStat(p)?.ppid === pid);
}

/** Processes whose command line contains `needle` (e.g. a hook script's path). */
export function countProcesses(needle: string): number {
  let n = 0;
  for (const p of allPids()) if (cmdline(p).includes(needle)) n += 1;
  return n;
}

/**
 * A server's own processes: the main pid plus its direct children that are not hook scripts
 * (armhook's spawn helper; the scripts are the helper's children, or — with the Node spawner —
 * direct children whose command line names the scripts directory, which are excluded, as are
 * children that already exited).
 */
export function serverPids(pid: number, scriptsDir: string): number[] {
  return [
    pid,
    ...childrenOf(pid).filter((c) => {
      const cmd = cmdline(c);
      return cmd !== '' && !cmd.includes(scriptsDir); // '' = a child that already exited (zombie)
    }),
  ];
}

export interface RssSample {
  /** main process */
  main: number;
  /** main + helpers (serverPids) */
  total: number;
  /** per pid: command, rss */
  parts: Array<{ pid: number; command: string; rss: number }>;
}

export function rss(pid: number, scriptsDir: string): RssSample {
  const parts = serverPids(pid, scriptsDir).map((p) => ({ pid: p, command: cmdline(p).slice(0, 120), rss: statusBytes(p) }));
  return { main: parts[0]?.rss ?? 0, total: parts.reduce((s, p) => s + p.rss, 0), parts };
}

/** CPU time (ms) used so far by the server's own processes. */
export function cpuMs(pid: number, scriptsDir: string): number {
  const hz = 100; // USER_HZ on Linux
  return serverPids(pid, scriptsDir).reduce((s, p) => s + ((readStat(p)?.ticks ?? 0) * 1000) / hz, 0);
}

/** CPU time (ms) so far of each of the server's own processes. */
export function cpuByProcess(pid: number, scriptsDir: string): Array<{ pid: number; command: string; ms: number }> {
  return serverPids(pid, scriptsDir).map((p) => ({ pid: p, command: cmdline(p).slice(0, 80), ms: ((readStat(p)?.ticks ?? 0) * 1000) / 100 }));
}

/** Samples RSS every `everyMs` until stopped; returns the peak total. */
export function rssSampler(pid: number, scriptsDir: string, everyMs = 250): { stop(): number } {
  let peak = rss(pid, scriptsDir).total;
  const timer = setInterval(() => {
    peak = Math.max(peak, rss(pid, scriptsDir).total);
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rss(pid, scriptsDir).total);
    },
  };
}
