// Runs the real `armhook` CLI (the TypeScript entry, on the project's Node) as a child process.
import { spawn } from 'node:child_process';
import { CLI, COMPILE_CACHE_ENV, NODE } from './process.ts';

export interface CliRun {
  pid: number;
  /** What the process wrote so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves when stdout (or stderr) has text that satisfies the predicate; rejects if the process ends first. */
  waitFor(predicate: (stdout: string, stderr: string) => boolean): Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

export function runCli(args: string[], env: Record<string, string> = {}): CliRun {
  const child = spawn(NODE, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...COMPILE_CACHE_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<{ check: () => boolean }>();
  const poke = (): void => {
    for (const waiter of waiters) if (waiter.check()) waiters.delete(waiter);
  };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    poke();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    poke();
  });
  let ended = false;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => {
      ended = true;
      poke();
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    pid: child.pid ?? 0,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    waitFor(predicate) {
      return new Promise((resolve, reject) => {
        const waiter = {
          check: () => {
            if (predicate(stdout, stderr)) resolve();
            else if (ended) reject(new Error(`the CLI ended first\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`));
            else return false;
            return true;
          },
        };
        if (!waiter.check()) waiters.add(waiter);
      });
    },
    exit,
  };
}
