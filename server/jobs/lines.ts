import { StringDecoder } from 'node:string_decoder';

/**
 * Splits a byte stream into lines. CR, LF and CRLF each end a line (a CRLF split across two
 * chunks is still one line end), so no output line ever contains a line break and script output
 * can never start a new SSE field or event. Invalid UTF-8 becomes U+FFFD; a multi-byte character
 * split across chunks is kept whole. A line longer than `maxLine` characters is cut into pieces,
 * so memory per stream stays bounded whatever the script writes.
 */
export class LineSplitter {
  readonly #decoder = new StringDecoder('utf8');
  readonly #maxLine: number;
  #partial = '';
  #afterCR = false;

  constructor(maxLine = 64 * 1024) {
    this.#maxLine = maxLine;
  }

  /** Returns the complete lines in this chunk. */
  push(chunk: Buffer): string[] {
    return this.#split(this.#decoder.write(chunk));
  }

  /** Returns what is left (a last line without a line end), if anything. */
  end(): string[] {
    const lines = this.#split(this.#decoder.end());
    if (this.#partial !== '') lines.push(this.#partial);
    this.#partial = '';
    return lines;
  }

  #split(text: string): string[] {
    const lines: string[] = [];
    let start = 0;
    if (this.#afterCR && text.startsWith('\n')) start = 1;
    this.#afterCR = false;
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      lines.push(this.#partial + text.slice(start, i));
      this.#partial = '';
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else {
          this.#afterCR = true;
        }
      }
      start = i + 1;
    }
    this.#partial += text.slice(start);
    while (this.#partial.length > this.#maxLine) {
      // Never cut between the two halves of a surrogate pair (a 4-byte UTF-8 character).
      const high = this.#partial.charCodeAt(this.#maxLine - 1);
      const cut = high >= 0xd800 && high <= 0xdbff ? this.#maxLine - 1 : this.#maxLine;
      lines.push(this.#partial.slice(0, cut));
      this.#partial = this.#partial.slice(cut);
    }
    return lines;
  }
}
