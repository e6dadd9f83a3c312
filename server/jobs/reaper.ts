import { readdir, readFile } from 'node:fs/promises';

/**
 * Kills what is left of a job's processes after armhook itself died (SIGKILL, power loss, OOM).
 * A process group id alone could have been reused by now, so a process is only killed when it is
 * in that group AND carries the job's ARMHOOK_JOB_ID in its environment. Linux (/proc) only;
 * elsewhere nothing is killed. Returns the pids killed.
 */
export async function killJobLeftovers(jobId: string, pgid: number): Promise<number[]> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return [];
  }
  const marker = `\0ARMHOOK_JOB_ID=${jobId}\0`;
  const killed: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces and parentheses): state ppid pgrp ...
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue;
      const environ = `\0${await readFile(`/proc/${pid}/environ`, 'latin1')}`;
      if (!environ.includes(marker)) continue;
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // The process ended while we looked, or is not ours to read: nothing to do.
    }
  }
  return killed;
}
