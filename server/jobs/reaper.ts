import { readdir, readFile } from 'node:fs/promises';
import type { Logger } from 'pino';

const MARKER = 'ARMHOOK_JOB_ID=';
/** Job ids are ULIDs: 26 characters. */
const JOB_ID_LENGTH = 26;

/**
 * Kills every live process whose environment carries one of `jobIds` as ARMHOOK_JOB_ID: what a
 * job left behind, in its process group or not (`setsid`, `nohup setsid …` start a new session
 * and group, out of reach of the group's signals). A job id is a ULID with 80 random bits, so
 * no unrelated process carries it. Linux (/proc) only; elsewhere nothing is killed. Processes of
 * other users (unreadable environment) are never touched. Returns the pids killed, per job id.
 */
export async function killJobLeftovers(jobIds: Iterable<string>): Promise<Map<string, number[]>> {
  const wanted = new Set(jobIds);
  const killed = new Map<string, number[]>();
  if (wanted.size === 0) return killed;
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return killed;
  }
  await Promise.all(
    entries.map(async (entry) => {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) return;
      let environ: string;
      try {
        environ = await readFile(`/proc/${entry}/environ`, 'latin1');
      } catch {
        return; // gone, or another user's
      }
      const at = `\0${environ}`.indexOf(`\0${MARKER}`);
      if (at < 0) return;
      const id = environ.slice(at + MARKER.length, at + MARKER.length + JOB_ID_LENGTH);
      if (!wanted.has(id)) return;
      try {
        process.kill(Number(entry), 'SIGKILL');
        killed.set(id, [...(killed.get(id) ?? []), Number(entry)]);
      } catch {
        // already gone
      }
    }),
  );
  return killed;
}

/**
 * Ends what ended jobs left behind. Scanning /proc costs a read per process, so jobs that end
 * within `batchMs` of each other share one scan; `flush()` (at shutdown) scans at once.
 */
export class LeftoverReaper {
  readonly #batchMs: number;
  readonly #log: Logger;
  readonly #pending = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #scan: Promise<void> = Promise.resolve();

  constructor(options: { batchMs: number; log: Logger }) {
    this.#batchMs = options.batchMs;
    this.#log = options.log;
  }

  /** Schedules the scan for `jobId`'s leftovers. */
  reap(jobId: string): void {
    this.#pending.add(jobId);
    this.#timer ??= setTimeout(() => void this.flush(), this.#batchMs);
  }

  /** Scans now for every job reaped so far; resolves when it (and any scan before it) is done. */
  flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const ids = [...this.#pending];
    this.#pending.clear();
    this.#scan = this.#scan.then(async () => {
      if (ids.length === 0) return;
      for (const [jobId, pids] of await killJobLeftovers(ids)) {
        this.#log.warn(
          { jobId, pids },
          'killed processes a job left running after it ended (started with setsid or nohup); a script should wait for what it starts',
        );
      }
    });
    return this.#scan;
  }
}
