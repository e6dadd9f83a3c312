import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ProcessGroup } from './process-group.ts';
import type { ScriptRunOptions, ScriptRunResult } from './runner.ts';

const HEADER = 9;
const SIGNAL_NAMES = new Map(Object.entries(osConstants.signals).map(([name, n]) => [n, name]));

interface PendingRun {
  options: ScriptRunOptions;
  resolve(result: ScriptRunResult): void;
  pid: number | undefined;
  group: ProcessGroup | undefined;
  exit: number | undefined;
  closed: boolean;
  onAbort: () => void;
}

/**
 * The spawn request's spec, `file NUL cwd NUL NAME=value NUL …` in UTF-8 (cheaper for the helper
 * to take apart than JSON), or why it can't be one: NUL ends a C string, so neither a path nor
 * the environment can hold it (node's own spawn refuses it too), and a name can't hold `=`.
 */
function specOf(options: Pick<ScriptRunOptions, 'file' | 'cwd' | 'env'>): Buffer | string {
  const parts = [options.file, options.cwd];
  for (const [name, value] of Object.entries(options.env)) {
    if (name === '' || name.includes('=')) return `the environment variable name ${JSON.stringify(name)} is not valid`;
    parts.push(`${name}=${value}`);
  }
  if (parts.some((part) => part.includes('\0'))) return 'the script path, working directory or environment contains a NUL byte';
  return Buffer.from(parts.join('\0'), 'utf8');
}

/** Candidates for the helper's interpreter: the system's Python first (a pyenv shim adds a shell hop). */
const PYTHONS = ['/usr/bin/python3', '/usr/local/bin/python3', '/bin/python3'];

/**
 * Runs scripts through a small long-lived helper process (server/hooks/spawner.py) that spawns
 * with posix_spawn, so the server never forks itself per job. Same contract as `runScript`:
 * the environment, cwd and stdin are built here, the script gets its own process group, and
 * cancel/timeout/exit signal that whole group (we know its id: the script's pid).
 */
export class SpawnHelper {
  readonly #log: Logger;
  readonly #python: string;
  #child: ChildProcess | undefined;
  #buffer: Buffer = Buffer.alloc(0);
  readonly #runs = new Map<number, PendingRun>();
  #nextId = 0;
  #closed = false;

  private constructor(python: string, log: Logger) {
    this.#python = python;
    this.#log = log;
  }

  /** A helper when a system Python 3 exists, else undefined (the caller spawns directly). */
  static create(log: Logger, python?: string): SpawnHelper | undefined {
    const candidates = python ? [python] : PYTHONS;
    for (const candidate of candidates) {
      try {
        accessSync(candidate, constants.X_OK);
        return new SpawnHelper(candidate, log);
      } catch {
        // try the next
      }
    }
    return undefined;
  }

  get running(): number {
    return this.#runs.size;
  }

  run(options: ScriptRunOptions): Promise<ScriptRunResult> {
    this.#ensure();
    const id = (this.#nextId = (this.#nextId + 1) >>> 0 || 1);
    const spec = specOf(options);
    if (typeof spec === 'string') return Promise.resolve({ exitCode: null, signal: null, startError: spec });
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(spec.length, 0);
    return new Promise((resolve) => {
      const run: PendingRun = { options, resolve, pid: undefined, group: undefined, exit: undefined, closed: false, onAbort: () => run.group?.terminate() };
      this.#runs.set(id, run);
      this.#send('S', id, length, spec, options.stdin);
    });
  }

  /** One frame: kind, job id, length, then the payload parts back to back. */
  #send(kind: string, id: number, ...parts: Buffer[]): void {
    const length = parts.reduce((sum, part) => sum + part.length, 0);
    const frame = Buffer.allocUnsafe(HEADER + length);
    frame.write(kind, 0, 'latin1');
    frame.writeUInt32BE(id, 1);
    frame.writeUInt32BE(length, 5);
    let offset = HEADER;
    for (const part of parts) offset += part.copy(frame, offset);
    this.#child?.stdin?.write(frame);
  }

  /** Stops the helper; scripts still running keep running in their groups (the job manager stops them first). */
  close(): void {
    this.#closed = true;
    this.#child?.stdin?.end();
    this.#child = undefined;
  }

  #ensure(): ChildProcess {
    if (this.#child) return this.#child;
    const child = spawn(this.#python, ['-I', '-S', '-u', join(import.meta.dirname, 'spawner.py')], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
    });
    // Frames are only read from the current helper; a new helper starts with an empty buffer.
    this.#buffer = Buffer.alloc(0);
    child.stdout?.on('data', (chunk: Buffer) => {
      if (this.#child === child) this.#onData(chunk);
    });
    child.on('error', (err) => {
      // No 'exit' follows a failed start (EAGAIN, ENOMEM): fail what was sent to it here.
      this.#log.error({ err }, 'spawn helper failed to start; check that python3 works (ARMHOOK_SPAWNER=node avoids it)');
      if (this.#child !== child) return;
      this.#child = undefined;
      this.#buffer = Buffer.alloc(0);
      for (const [id, run] of this.#runs) this.#finish(id, run, `the spawn helper could not start: ${err.message}`);
    });
    child.on('exit', (code, signal) => {
      if (this.#child === child) {
        this.#child = undefined;
        this.#buffer = Buffer.alloc(0);
      }
      if (this.#closed && this.#runs.size === 0) return;
      this.#log.error(
        { code, signal, running: this.#runs.size },
        'spawn helper exited; its running scripts are stopped and reported as failed, the next job starts a new helper',
      );
      for (const [id, run] of this.#runs) {
        run.group?.signal('SIGKILL');
        this.#finish(id, run, 'the spawn helper exited while the script ran');
      }
    });
    child.stdin?.on('error', () => undefined);
    this.#child = child;
    return child;
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    let offset = 0;
    while (this.#buffer.length - offset >= HEADER) {
      const length = this.#buffer.readUInt32BE(offset + 5);
      if (this.#buffer.length - offset < HEADER + length) break;
      const kind = this.#buffer[offset];
      const id = this.#buffer.readUInt32BE(offset + 1);
      const payload = this.#buffer.subarray(offset + HEADER, offset + HEADER + length);
      offset += HEADER + length;
      this.#onFrame(kind ?? 0, id, payload);
    }
    this.#buffer = offset === this.#buffer.length ? Buffer.alloc(0) : this.#buffer.subarray(offset);
  }

  #onFrame(kind: number, id: number, payload: Buffer): void {
    const run = this.#runs.get(id);
    if (!run) return;
    switch (String.fromCharCode(kind)) {
      case 'P': {
        run.pid = payload.readUInt32BE(0);
        run.group = new ProcessGroup(run.pid, run.options.killGraceMs);
        run.options.onStart(run.pid);
        if (run.options.signal.aborted) run.group.terminate();
        else run.options.signal.addEventListener('abort', run.onAbort, { once: true });
        break;
      }
      case 'F':
        this.#finish(id, run, payload.toString('utf8'));
        break;
      case 'O':
        // Copy: the frame buffer is reused for the next chunk.
        run.options.onOutput('stdout', Buffer.from(payload));
        break;
      case 'E':
        run.options.onOutput('stderr', Buffer.from(payload));
        break;
      case 'X':
        run.exit = payload.readInt32BE(0);
        // The script is over: end whatever it left running in its group (see runScript). The
        // helper says whether anything was left when the script was reaped; an empty group can't
        // gain members (nothing alive carries its id), so there is nothing to signal.
        if (payload.length > 4 && payload[4] === 0) run.group?.markEmpty();
        run.group?.terminate();
        if (run.closed) this.#finish(id, run);
        // Once nothing of the group is alive, output that is still open belongs to something
        // that left the group (setsid, a daemon): stop waiting for it, or the job never ends.
        else
          void run.group?.settle().then(() => {
            if (this.#runs.get(id) === run && !run.closed) this.#send('K', id);
          });
        break;
      case 'C':
        run.closed = true;
        if (run.exit !== undefined) this.#finish(id, run);
        break;
    }
  }

  #finish(id: number, run: PendingRun, startError?: string): void {
    this.#runs.delete(id);
    const exit = run.exit;
    const result: ScriptRunResult = {
      exitCode: exit !== undefined && exit >= 0 ? exit : null,
      signal: exit !== undefined && exit < 0 ? (SIGNAL_NAMES.get(-exit) ?? `signal ${-exit}`) : null,
      startError: run.pid === undefined ? (startError ?? 'the script could not be started') : startError,
    };
    // Resolve once nothing of the group is left alive (SIGTERM-proof leftovers get the SIGKILL).
    void (run.group?.settle() ?? Promise.resolve()).then(() => {
      run.options.signal.removeEventListener('abort', run.onAbort);
      run.resolve(result);
    });
  }
}
