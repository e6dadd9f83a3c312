// Idempotency-Key: a repeat of the same run by the same caller within a day gets the job the
// first request started (the job manager stores the key with the job, so this outlives a
// restart); the same key for another request is 422. A signed request is keyed on what its
// signature covers instead (auth.ts), and its Idempotency-Key is ignored: the header is not
// signed, so a replay could otherwise choose a new one and run again.
//
// The fingerprint that tells "the same request" from "another one" covers secret parameter values,
// and is stored in the job database: it is an HMAC under a per-installation key kept beside the
// database (never in it), so a copy of the database does not let anyone test guesses of a secret.

import { createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../atomic-write.ts';
import { AppError } from '../errors.ts';
import type { JobSpec } from '../jobs/index.ts';

/** 1–255 printable ASCII characters. */
const KEY = /^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/;

/** The key file in the data directory: 32 random bytes as hex, mode 0600. */
export const FINGERPRINT_KEY_FILE = 'idempotency.key';

/**
 * A signed run's fingerprint: its key already names everything the signature covers, so a repeat
 * that differs only in what it does not cover (a header) is the same delivery, not a reuse.
 */
const SIGNED = 'signed';

/** What a run is remembered by: the caller's key, and what a repeat of it must match. */
export interface RunKey {
  key: string;
  fingerprint: string;
}

/**
 * The run's key, if it has one: a signed request's (per hook), else the Idempotency-Key header's
 * (a malformed one is 400; nothing runs).
 */
export function runKey(request: FastifyRequest, spec: JobSpec, body: Buffer, fingerprintKey: Buffer): RunKey | undefined {
  if (request.signedKey !== undefined) return { key: `${spec.hook} ${request.signedKey}`, fingerprint: SIGNED };
  const raw = request.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  const key = Array.isArray(raw) ? raw.join(',') : raw;
  if (!KEY.test(key))
    throw new AppError(400, 'bad_idempotency_key', 'Idempotency-Key must be 1 to 255 printable ASCII characters (a UUID is a good choice); nothing was run');
  return { key, fingerprint: fingerprint(spec, body, fingerprintKey) };
}

/** What a run asks for: the hook, its parameters (secrets included) and its body, as an HMAC under the installation's key. */
export function fingerprint(spec: JobSpec, body: Buffer, fingerprintKey: Buffer): string {
  return createHmac('sha256', fingerprintKey)
    .update(JSON.stringify([spec.hook, spec.method, spec.params, spec.secrets]))
    .update('\n')
    .update(body)
    .digest('base64url');
}

/**
 * The installation's fingerprint key, `<dataDir>/idempotency.key`, created (0600) at the first
 * start. A missing or unreadable-as-a-key file is replaced; fingerprints made with the old key
 * then no longer match, so a retry from before gets 422 (it never runs twice).
 */
export async function loadFingerprintKey(dataDir: string, log: Logger): Promise<Buffer> {
  const file = join(dataDir, FINGERPRINT_KEY_FILE);
  let text: string | undefined;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined && /^[0-9a-f]{64}$/.test(text)) return Buffer.from(text, 'hex');
  const key = randomBytes(32);
  await writeFileAtomic(file, `${key.toString('hex')}\n`, { mode: 0o600 });
  if (text === undefined) log.info({ file }, 'created the key that idempotency fingerprints are made with');
  else log.warn({ file }, 'the idempotency key file did not hold a key and was replaced: a retry of a request made before gets 422 instead of its job');
  return key;
}
