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
    // Native searches for the next CR and LF (most output has no CR at all), not a loop per character.
    let nextCR = text.indexOf('\r', start);
    let nextLF = text.indexOf('\n', start);
    while (nextCR !== -1 || nextLF !== -1) {
      const atLF = nextLF !== -1 && (nextCR === -1 || nextLF < nextCR);
      const i = atLF ? nextLF : nextCR;
      this.#pushCut(lines, this.#partial + text.slice(start, i));
      this.#partial = '';
      start = i + 1;
      if (!atLF) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) start = i + 2;
        } else {
          this.#afterCR = true;
        }
      }
      if (nextCR !== -1 && nextCR < start) nextCR = text.indexOf('\r', start);
      if (nextLF !== -1 && nextLF < start) nextLF = text.indexOf('\n', start);
    }
    this.#partial += text.slice(start);
    if (this.#partial.length > this.#maxLine) {
      // Keep the (short) rest as the partial line; the full pieces go out now.
      const pieces: string[] = [];
      this.#pushCut(pieces, this.#partial);
      this.#partial = pieces.pop() ?? '';
      lines.push(...pieces);
    }
    return lines;
  }

  /** Pushes `line`, cut into pieces of at most maxLine characters (never inside a surrogate pair). */
  #pushCut(lines: string[], line: string): void {
    while (line.length > this.#maxLine) {
      const high = line.charCodeAt(this.#maxLine - 1);
      const cut = high >= 0xd800 && high <= 0xdbff ? this.#maxLine - 1 : this.#maxLine;
      lines.push(line.slice(0, cut));
      line = line.slice(cut);
    }
    lines.push(line);
  }
}
