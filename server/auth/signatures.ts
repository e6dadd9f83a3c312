// Signed webhooks: the sender and armhook share a secret; the signature covers the raw bytes.
//
// - github: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, as GitHub sends it.
// - hmac:   `Armhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<METHOD>.<path?query>.<raw body>")>`;
//           the time must be within 5 minutes of ours, and each signature is accepted once.
//
// A verified request's run is keyed on what its signature covers, never on a header the sender
// (or anyone replaying its request) could change: a repeat is answered with the job the first
// one started. Every comparison is constant-time over equal-length byte strings.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { SignatureScheme } from '../access/index.ts';

export const SIGNATURE_HEADERS: Record<SignatureScheme, string> = { github: 'x-hub-signature-256', hmac: 'armhook-signature' };

/** |now − t| may be at most this for the hmac scheme, seconds. */
export const HMAC_TOLERANCE_SECONDS = 300;
/** Signatures remembered against replay; past this many, the oldest go first (they expire anyway). */
const MAX_REMEMBERED = 100_000;

/** What the signature covers. */
export interface SignedRequest {
  method: string;
  /** Path and query exactly as sent. */
  url: string;
  body: Buffer;
  header: string;
}

function equalHex(expected: Buffer, hex: string): boolean {
  if (!/^[0-9a-f]{64}$/i.test(hex)) return false;
  return timingSafeEqual(expected, Buffer.from(hex, 'hex'));
}

/** A signature's verdict: the run's idempotency key when it is valid, why not otherwise. */
export type SignatureCheck = { valid: true; runKey: string } | { valid: false; problem: string };

const refused = (problem: string): SignatureCheck => ({ valid: false, problem });

/**
 * A GitHub signature covers the body only (no time, no delivery id, no URL), so the run is keyed
 * on the body's SHA-256: a captured delivery sent again, whatever its X-GitHub-Delivery, gets the
 * job the first one started (the key is the caller's per hook, see http/idempotency.ts).
 */
export function checkGithubSignature(secret: Buffer, request: SignedRequest): SignatureCheck {
  const match = /^sha256=(.*)$/.exec(request.header.trim());
  if (!match) return refused('X-Hub-Signature-256 must be sha256=<hex>');
  const expected = createHmac('sha256', secret).update(request.body).digest();
  if (!equalHex(expected, match[1] ?? '')) return refused('the signature does not match the body');
  return { valid: true, runKey: `github:${createHash('sha256').update(request.body).digest('base64url')}` };
}

/**
 * Remembers accepted hmac signatures until they are too old to be accepted anyway, so each one
 * is accepted once. One per app instance.
 */
export class ReplayGuard {
  /** signature hex → the time (seconds) after which it would be refused as stale anyway. */
  readonly #seen = new Map<string, number>();

  /** True the first time a signature is seen (within its validity), false on a replay. */
  firstUse(signature: string, t: number, now: number): boolean {
    for (const [key, expires] of this.#seen) {
      if (expires >= now && this.#seen.size < MAX_REMEMBERED) break;
      this.#seen.delete(key);
    }
    const key = signature.toLowerCase();
    if (this.#seen.has(key)) return false;
    this.#seen.set(key, t + HMAC_TOLERANCE_SECONDS);
    return true;
  }
}

/**
 * An hmac signature covers the time, method, path, query and body: the run is keyed on the
 * verified v1 itself (a replay after a restart, when the replay guard has forgotten it, gets the
 * job it started). `t` and `v1` may each appear once, so the value checked is the value keyed.
 */
export function checkHmacSignature(secret: Buffer, request: SignedRequest, replay: ReplayGuard, nowSeconds: number): SignatureCheck {
  const fields = new Map<string, string>();
  for (const part of request.header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (fields.has(name)) return refused(`Armhook-Signature must carry ${name}= once`);
    fields.set(name, part.slice(eq + 1).trim());
  }
  const t = fields.get('t') ?? '';
  const v1 = fields.get('v1') ?? '';
  if (!/^\d{1,12}$/.test(t) || v1 === '') return refused('Armhook-Signature must be t=<unix seconds>,v1=<hex>');
  if (Math.abs(nowSeconds - Number(t)) > HMAC_TOLERANCE_SECONDS)
    return refused(`the signature's time is more than ${HMAC_TOLERANCE_SECONDS} s from the server's; sign again (and check the sender's clock)`);
  const expected = createHmac('sha256', secret).update(`${t}.${request.method}.${request.url}.`).update(request.body).digest();
  if (!equalHex(expected, v1)) return refused('the signature does not match the request');
  if (!replay.firstUse(v1, Number(t), nowSeconds)) return refused('this signature was already used; sign each request anew');
  return { valid: true, runKey: `hmac:${v1.toLowerCase()}` };
}
