// Idempotency-Key: a repeat of the same run by the same caller within a day gets the job the
// first request started (the job manager stores the key with the job, so this outlives a
// restart); the same key for another request is 422. A verified GitHub delivery's
// X-GitHub-Delivery is its key when the sender sends none.

import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';
import type { JobSpec } from '../jobs/index.ts';

/** 1–255 printable ASCII characters. */
const KEY = /^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/;

/** The request's idempotency key, if it has one; a malformed one is 400 (nothing runs). */
export function idempotencyKey(request: FastifyRequest): string | undefined {
  const raw = request.headers['idempotency-key'];
  if (raw === undefined) return request.deliveryId;
  const key = Array.isArray(raw) ? raw.join(',') : raw;
  if (!KEY.test(key))
    throw new AppError(400, 'bad_idempotency_key', 'Idempotency-Key must be 1 to 255 printable ASCII characters (a UUID is a good choice); nothing was run');
  return key;
}

/** What a run asks for: the hook, its parameters (secrets included, only hashed) and its body. */
export function fingerprint(spec: JobSpec, body: Buffer): string {
  return createHash('sha256')
    .update(JSON.stringify([spec.hook, spec.method, spec.params, spec.secrets]))
    .update('\n')
    .update(body)
    .digest('base64url');
}
