import { readFile } from 'node:fs/promises';
import { liveGroupMembers } from '../hooks/process-group.ts';

/**
 * Kills what is left of a job's processes after armhook itself died (SIGKILL, power loss, OOM).
 * A process group id alone could have been reused by now, so a process is only killed when it is
 * in that group AND carries the job's ARMHOOK_JOB_ID in its environment. Linux (/proc) only;
 * elsewhere nothing is killed. Returns the pids killed.
 */
export async function killJobLeftovers(jobId: string, pgid: number): Promise<number[]> {
  const marker = `\0ARMHOOK_JOB_ID=${jobId}\0`;
  const ours = async (pid: number): Promise<boolean> => `\0${await readFile(`/proc/${pid}/environ`, 'latin1')}`.includes(marker);
  let members: number[];
  try {
    members = await liveGroupMembers(pgid, ours);
  } catch {
    return [];
  }
  for (const pid of members) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return members;
}
