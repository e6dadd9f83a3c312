// A verifier pool thread: checks one password against one htpasswd hash per message, so bcrypt's
// tens of milliseconds never run on the server's event loop.
import { parentPort } from 'node:worker_threads';
import { verifyPassword } from './htpasswd.ts';

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
