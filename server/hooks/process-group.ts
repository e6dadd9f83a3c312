import { readdir, readFile } from 'node:fs/promises';

/**
 * The processes in a process group that are still alive (zombies excluded: they are dead and
 * only wait to be reaped, which some init systems never do), and pass `filter` when given.
 * Linux reads /proc; elsewhere the group counts as empty once `kill(-pgid, 0)` fails.
 */
export async function liveGroupMembers(pgid: number, filter?: (pid: number) => Promise<boolean>): Promise<number[]> {
  try {
    process.kill(-pgid, 0);
  } catch {
    return [];
  }
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    // No /proc: the group is alive but its members can't be listed, let alone verified.
    return filter ? [] : [pgid];
  }
  const members: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      // After the command name (which may hold spaces and parentheses): state ppid pgrp ...
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid || fields[0] === 'Z' || fields[0] === 'X') continue;
      if (filter && !(await filter(pid))) continue;
      members.push(pid);
    } catch {
      // ended while we looked
    }
  }
  return members;
}

/**
 * Ends a script's process group: SIGTERM to every member, then SIGKILL after a grace period to
 * whatever is still there. `settle()` is for when the script itself is over: it resolves once
 * nothing of the group is left alive, which may mean waiting for the SIGKILL.
 */
export class ProcessGroup {
  readonly pgid: number;
  readonly #graceMs: number;
  #timer: NodeJS.Timeout | undefined;
  #killed = false;
  /** Once the kernel said the group is empty it stays so: later signals are skipped. */
  #gone = false;
  readonly #onKilled = new Set<() => void>();

  constructor(pgid: number, graceMs: number) {
    this.pgid = pgid;
    this.#graceMs = graceMs;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.#gone) return;
    try {
      process.kill(-this.pgid, signal);
    } catch {
      // ESRCH: nobody left in the group.
      this.#gone = true;
    }
  }

  /** Someone who could tell without a signal (the spawn helper) saw the group empty. */
  markEmpty(): void {
    this.#gone = true;
  }

  /** SIGTERM now, SIGKILL after the grace period (once, however often this is called). */
  terminate(): void {
    if (this.#gone) return;
    this.signal('SIGTERM');
    if (this.#timer || this.#killed) return;
    this.#timer = setTimeout(() => this.#kill(), this.#graceMs);
    this.#timer.unref();
  }

  /** The script is over: end what it left behind; resolves when nothing of the group is alive. */
  async settle(): Promise<void> {
    this.terminate();
    if (!this.#gone && !this.#killed && (await liveGroupMembers(this.pgid)).length > 0) {
      // Something ignores SIGTERM: the job ends when the SIGKILL has gone out.
      await new Promise<void>((resolve) => {
        if (this.#killed) resolve();
        else this.#onKilled.add(resolve);
      });
      // SIGKILL is sent, not yet done: a process dies when it is next scheduled, which on a busy
      // machine can take a while. "Done" means nothing is alive, so look until it is (bounded).
      for (let i = 0; i < 400 && (await liveGroupMembers(this.pgid)).length > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #kill(): void {
    this.#killed = true;
    this.#timer = undefined;
    this.signal('SIGKILL');
    for (const resolve of this.#onKilled) resolve();
    this.#onKilled.clear();
  }
}
