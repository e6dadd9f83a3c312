import { createHash, type BinaryToTextEncoding, type Hash } from 'node:crypto';

/** SHA-256's block size: HMAC pads (or hashes) the key to one block. */
const BLOCK_BYTES = 64;

/**
 * HMAC-SHA256 (RFC 2104) under one fixed key, for digests computed on every request. The key's
 * inner and outer blocks are hashed once here and each digest continues from copies of those
 * states: the same bytes as `createHmac('sha256', key)`, without the per-call key set-up that
 * makes `createHmac` several times slower for short messages.
 */
export class HmacSha256 {
  readonly #inner: Hash;
  readonly #outer: Hash;

  constructor(key: Buffer) {
    const block = Buffer.alloc(BLOCK_BYTES);
    (key.length > BLOCK_BYTES ? createHash('sha256').update(key).digest() : key).copy(block);
    this.#inner = createHash('sha256').update(block.map((byte) => byte ^ 0x36));
    this.#outer = createHash('sha256').update(block.map((byte) => byte ^ 0x5c));
    block.fill(0);
  }

  digest(message: string): Buffer;
  digest(message: string, encoding: BinaryToTextEncoding): string;
  digest(message: string, encoding?: BinaryToTextEncoding): Buffer | string {
    const inner = this.#inner.copy().update(message, 'utf8').digest();
    const outer = this.#outer.copy().update(inner);
    return encoding === undefined ? outer.digest() : outer.digest(encoding);
  }
}
