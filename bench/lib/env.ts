/**
 * The machine and the tools: required commands (nothing is installed by the bench), the build,
 * and what the report says about where it ran.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, totalmem, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { BenchConfig } from './config.ts';
import { run } from './procs.ts';

/** Commands the bench runs, and the Debian package of each. */
export const REQUIRED_COMMANDS: ReadonlyArray<{ command: string; pkg: string; why: string }> = [
  { command: 'webhook', pkg: 'webhook', why: 'the peer (adnanh/webhook 2.8.0)' },
  { command: 'wrk', pkg: 'wrk', why: 'HTTP load for scenarios 1 and 2' },
  { command: 'openssl', pkg: 'openssl', why: 'the TLS certificate both servers use' },
  { command: 'yes', pkg: 'coreutils', why: 'hook scripts (yes, head, date, sleep)' },
];

export function which(command: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, command);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Names what is missing and the apt-get line that installs it; installs nothing. */
export function missingTools(): string | undefined {
  const missing = REQUIRED_COMMANDS.filter((c) => !which(c.command));
  if (missing.length === 0) return undefined;
  const pkgs = [...new Set(missing.map((m) => m.pkg))];
  return [
    `bench: missing ${missing.map((m) => `\`${m.command}\` (${m.why})`).join(', ')}.`,
    `Install with:  sudo apt-get install -y ${pkgs.join(' ')}`,
    'The bench installs nothing itself.',
  ].join('\n');
}

export async function build(config: BenchConfig): Promise<{ ms: number }> {
  const t0 = performance.now();
  const npm = which('npm');
  if (!npm) throw new Error('npm not found on PATH (run the bench with `npm run bench`)');
  const r = await run(npm, ['run', 'build'], { cwd: config.root, timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`npm run build failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return { ms: performance.now() - t0 };
}

export interface Machine {
  nproc: number;
  cpuModel: string;
  memTotalMiB: number;
  kernel: string;
  /** The Node that runs armhook (bin/armhook picks the project's runtime). */
  serverNode: string;
  /** The Node that runs the bench. */
  benchNode: string;
  webhookVersion: string;
  wrkVersion: string;
  python3: string;
  tmpdir: string;
  date: string;
  commit: string;
  /** Files under server/ that differ from HEAD when the bench ran. */
  dirtyServerFiles: string[];
  loadavgAtStart: number[];
}

async function firstLine(command: string, args: string[]): Promise<string> {
  try {
    const r = await run(command, args, { timeoutMs: 10_000 });
    return `${r.stdout}${r.stderr}`.split('\n')[0]?.trim() ?? '';
  } catch {
    return 'unknown';
  }
}

export async function machine(config: BenchConfig): Promise<Machine> {
  let cpuModel = 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  } catch {
    // not Linux?
  }
  const serverNodeBin = [join(config.root, 'node_modules/node/bin/node'), join(config.root, 'node_modules/.bin/node')].find((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  const git = async (...args: string[]): Promise<string> => {
    try {
      return (await run('git', args, { cwd: config.root, timeoutMs: 10_000 })).stdout.trimEnd();
    } catch {
      return '';
    }
  };
  return {
    nproc: availableParallelism(),
    cpuModel,
    memTotalMiB: Math.round(totalmem() / 1024 / 1024),
    kernel: release(),
    serverNode: serverNodeBin ? await firstLine(serverNodeBin, ['--version']) : 'unknown',
    benchNode: process.version,
    webhookVersion: await firstLine('webhook', ['-version']),
    wrkVersion: (await firstLine('wrk', ['-v'])).replace(/ Copyright.*$/, ''),
    python3: which('python3') ? await firstLine('python3', ['--version']) : 'absent (armhook spawns from Node)',
    tmpdir: tmpdir(),
    date: new Date().toISOString(),
    commit: (await git('rev-parse', '--short', 'HEAD')).trim() || 'unknown',
    dirtyServerFiles: (await git('status', '--porcelain', '--', 'server', 'bin', 'package.json'))
      .split('\n')
      .map((l) => l.slice(3).trim())
      .filter(Boolean),
    loadavgAtStart: loadavg().map((n) => Math.round(n * 100) / 100),
  };
}
