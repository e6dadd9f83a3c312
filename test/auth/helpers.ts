// Shared helpers for the auth tests: temp dirs, the real htpasswd binary, a capturing logger.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export const HTPASSWD = '/usr/bin/htpasswd';

/** A fresh temp dir removed when the test ends. */
export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'armhook-auth-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the real htpasswd with `args` (batch mode expected); throws with its stderr on failure. */
export function htpasswd(...args: string[]): string {
  return execFileSync(HTPASSWD, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `htpasswd -vb file user password`: true when the real binary accepts the password. */
export function htpasswdVerifies(file: string, user: string, password: string): boolean {
  const r = spawnSync(HTPASSWD, ['-vb', file, user, password], { encoding: 'utf8' });
  return r.status === 0;
}

export { captureLog, LEVEL, type CapturedLog, type LogLine } from '../helpers/log.ts';
