import { randomFillSync } from 'node:crypto';
import { ulid } from 'ulid';

/**
 * Job ids: ULIDs (time-sortable, 80 random bits, unguessable). The random part comes from a
 * pool filled from the CSPRNG 4 KiB at a time — the same bytes, fetched in bulk instead of one
 * call per character.
 */
export class JobIds {
  readonly #pool = Buffer.alloc(4096);
  #next = this.#pool.length;

  readonly #prng = (): number => {
    if (this.#next >= this.#pool.length) {
      randomFillSync(this.#pool);
      this.#next = 0;
    }
    return (this.#pool[this.#next++] ?? 0) / 256;
  };

  // Not ulid's monotonic factory: it makes the next id of the same millisecond the previous one
  // plus one, which a caller holding one id could guess. Jobs of one millisecond sort randomly.
  next(now = Date.now()): string {
    return ulid(now, this.#prng);
  }
}

const ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

export function isJobId(value: string): boolean {
  return ID.test(value);
}
