// Signed webhooks: the sender and armhook share a secret; the signature covers the raw bytes.
//
// - github: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, as GitHub sends it.
// - hmac:   `Armhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<METHOD>.<path?query>.<raw body>")>`;
//           the time must be within 5 minutes of ours, and each signature is accepted once.
//
// Every comparison is constant-time over equal-length byte strings.

import { createHmac, timingSafeEqual } from 'node:crypto';
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

/** Why a GitHub signature is refused, or undefined when it is valid. */
export function githubSignatureProblem(secret: Buffer, request: SignedRequest): string | undefined {
  const match = /^sha256=(.*)$/.exec(request.header.trim());
  if (!match) return 'X-Hub-Signature-256 must be sha256=<hex>';
  const expected = createHmac('sha256', secret).update(request.body).digest();
  return equalHex(expected, match[1] ?? '') ? undefined : 'the signature does not match the body';
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

/** Why an hmac signature is refused, or undefined when it is valid (and now used up). */
export function hmacSignatureProblem(secret: Buffer, request: SignedRequest, replay: ReplayGuard, nowSeconds: number): string | undefined {
  const fields = new Map<string, string>();
  for (const part of request.header.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const t = fields.get('t') ?? '';
  const v1 = fields.get('v1') ?? '';
  if (!/^\d{1,12}$/.test(t) || v1 === '') return 'Armhook-Signature must be t=<unix seconds>,v1=<hex>';
  if (Math.abs(nowSeconds - Number(t)) > HMAC_TOLERANCE_SECONDS)
    return `the signature's time is more than ${HMAC_TOLERANCE_SECONDS} s from the server's; sign again (and check the sender's clock)`;
  const expected = createHmac('sha256', secret).update(`${t}.${request.method}.${request.url}.`).update(request.body).digest();
  if (!equalHex(expected, v1)) return 'the signature does not match the request';
  if (!replay.firstUse(v1, Number(t), nowSeconds)) return 'this signature was already used; sign each request anew';
  return undefined;
}
