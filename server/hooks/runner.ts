import { ProcessGroup } from './process-group.ts';

export type OutputStream = 'stdout' | 'stderr';

export interface ScriptRunOptions {
  file: string;
  cwd: string;
  env: Record<string, string>;
  /** The request body, written to the script's stdin (then closed). */
  stdin: Buffer;
  /** Aborting kills the whole process group: SIGTERM, then SIGKILL after `killGraceMs`. */
  signal: AbortSignal;
  killGraceMs: number;
  onStart(pid: number): void;
  /** Raw output, in order per stream, as it is produced (never buffered whole). */
  onOutput(stream: OutputStream, chunk: Buffer): void;
}

export interface ScriptRunResult {
  exitCode: number | null;
  signal: string | null;
  /** Set when the script could not be started at all (ENOEXEC, EACCES...). */
  startError: string | undefined;
}

/**
 * Runs one script in its own process group, streaming its output.
 *
 * execa's defaults are wrong for a runner, so each is set on purpose: `buffer: false` (output is
 * streamed, never held), `extendEnv: false` (the environment is exactly `env`), `detached: true`
 * (a process group of its own, which we signal as a whole: execa's `timeout` and `cancelSignal`
 * only reach the direct child, not what it forked), `reject: false` (a non-zero exit is a result).
 */
export async function runScript(options: ScriptRunOptions): Promise<ScriptRunResult> {
  // Loaded on first use: with the spawn helper (the default) this path is only the fallback.
  const { execa } = await import('execa');
  const subprocess = execa(options.file, [], {
    cwd: options.cwd,
    env: options.env,
    extendEnv: false,
    input: options.stdin,
    buffer: false,
    detached: true,
    cleanup: false,
    reject: false,
    stripFinalNewline: false,
    encoding: 'buffer',
  });
  const pid = subprocess.pid;
  const group = pid === undefined ? undefined : new ProcessGroup(pid, options.killGraceMs);
  let exited = false;
  let giveUp: NodeJS.Timeout | undefined;
  // execa settles when the script has exited AND its output pipes have closed. A process that
  // left the group (setsid) may hold the pipes for as long as it likes, and this path can't tell
  // "held open" from "last bytes not read yet" (the exit is often seen first). So such a job runs
  // on until it is cancelled or times out; then, once nothing of the group is alive, the pipes get
  // the kill grace period to reach end of file — what a stopping script printed is read — and are
  // closed after that.
  const stopReading = (): void => {
    void group?.settle().then(() => {
      if (giveUp || (subprocess.stdout?.readableEnded !== false && subprocess.stderr?.readableEnded !== false)) return;
      giveUp = setTimeout(() => {
        subprocess.stdout?.destroy();
        subprocess.stderr?.destroy();
      }, options.killGraceMs);
      giveUp.unref();
    });
  };
  const onAbort = (): void => {
    group?.terminate();
    if (exited) stopReading();
  };

  if (pid !== undefined) {
    options.onStart(pid);
    if (options.signal.aborted) onAbort();
    else options.signal.addEventListener('abort', onAbort, { once: true });
    subprocess.stdout?.on('data', (chunk: Buffer) => options.onOutput('stdout', chunk));
    subprocess.stderr?.on('data', (chunk: Buffer) => options.onOutput('stderr', chunk));
    // When the script itself exits, whatever it left behind in its group (a background child
    // holding the output pipes open) is ended too: a job is over when its script is.
    subprocess.nodeChildProcess.once('exit', () => {
      exited = true;
      group?.terminate();
      if (options.signal.aborted) stopReading();
    });
  }
  try {
    const result = await subprocess;
    await group?.settle();
    const startError =
      pid === undefined || (result.failed && result.exitCode === undefined && result.signal === undefined)
        ? result.originalMessage || result.shortMessage || 'the script could not be started'
        : undefined;
    return {
      exitCode: result.exitCode ?? null,
      signal: result.signal ?? null,
      startError,
    };
  } finally {
    if (giveUp) clearTimeout(giveUp);
    options.signal.removeEventListener('abort', onAbort);
  }
}
