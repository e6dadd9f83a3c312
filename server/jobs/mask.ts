/** Replaces every occurrence of the secret values in a text with ***. */
export class SecretMasker {
  readonly #secrets: string[];

  constructor(secrets: string[]) {
    // Output is masked line by line, so a secret with line breaks is masked line by line too.
    const parts = secrets.flatMap((secret) => [secret, ...secret.split(/\r\n|\r|\n/)]);
    // Longest first, so a secret that contains another is masked whole.
    this.#secrets = [...new Set(parts.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
  }

  get empty(): boolean {
    return this.#secrets.length === 0;
  }

  mask(text: string): string {
    let out = text;
    for (const secret of this.#secrets) if (out.includes(secret)) out = out.replaceAll(secret, '***');
    return out;
  }
}
