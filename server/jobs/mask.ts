/** Secrets shorter than this are masked only where they stand as a whole word. */
const SHORT_SECRET = 4;

/**
 * Replaces the secret values in a text with ***, by exact value: a secret that is split,
 * encoded (base64, URL, hex) or reversed by the script is not recognised. A value of 4 or more
 * characters is masked wherever it occurs; a shorter one only as a whole word (not next to a
 * letter, digit or _), or `pw=e` would turn every "e" of the output into ***.
 */
export class SecretMasker {
  readonly #secrets: string[];
  readonly #shortWords: RegExp | undefined;

  constructor(secrets: string[]) {
    // Output is masked line by line, so a secret with line breaks is masked line by line too.
    const parts = secrets.flatMap((secret) => [secret, ...secret.split(/\r\n|\r|\n/)]);
    // Longest first, so a secret that contains another is masked whole.
    const all = [...new Set(parts.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
    this.#secrets = all.filter((s) => s.length >= SHORT_SECRET);
    const short = all.filter((s) => s.length < SHORT_SECRET).map((s) => s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&'));
    this.#shortWords = short.length > 0 ? new RegExp(`(?<![\\p{L}\\p{N}_])(?:${short.join('|')})(?![\\p{L}\\p{N}_])`, 'gu') : undefined;
  }

  get empty(): boolean {
    return this.#secrets.length === 0 && this.#shortWords === undefined;
  }

  mask(text: string): string {
    let out = text;
    for (const secret of this.#secrets) if (out.includes(secret)) out = out.replaceAll(secret, '***');
    return this.#shortWords === undefined ? out : out.replace(this.#shortWords, '***');
  }
}
