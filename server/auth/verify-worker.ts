// A verifier pool thread: checks one password against one htpasswd hash per message, so bcrypt's
// tens of milliseconds never run on the server's event loop.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { verifyPassword } from './htpasswd.ts';

// Lowest CPU priority for this thread alone (Linux: a thread id is a valid target of
// setpriority), so on a busy machine the thread serving requests goes first and a guessing
// load waits instead. Elsewhere, or if refused, the thread keeps the default priority.
try {
  const tid = Number(/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'))?.[1]);
  if (tid > 0) setPriority(tid, 19);
} catch {
  // not Linux, or not allowed
}

export interface VerifyRequest {
  id: number;
  password: string;
  hash: string;
}

export interface VerifyResponse {
  id: number;
  ok: boolean;
}

parentPort?.on('message', ({ id, password, hash }: VerifyRequest) => {
  parentPort?.postMessage({ id, ok: verifyPassword(password, hash) } satisfies VerifyResponse);
});
