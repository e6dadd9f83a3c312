import { LineSplitter } from './lines.ts';
import type { JobLog } from './job-log.ts';
import { SecretMasker } from './mask.ts';
import { maskTokens } from './tokens.ts';

export type OutputStream = 'stdout' | 'stderr';

/**
 * Raw script output as lines: split at CR, LF and CRLF (a chunk may end mid-line), secrets and
 * access tokens masked line by line (a chunk boundary can split a secret, a line boundary can't). `emit` gets each
 * batch. Used for a job's log and for `armhook run`'s terminal alike.
 */
export class MaskedLines {
  readonly #masker: SecretMasker;
  readonly #splitters = { stdout: new LineSplitter(), stderr: new LineSplitter() };
  readonly #emit: (stream: OutputStream, lines: string[]) => void;

  constructor(secrets: string[], emit: (stream: OutputStream, lines: string[]) => void) {
    this.#masker = new SecretMasker(secrets);
    this.#emit = emit;
  }

  chunk(stream: OutputStream, chunk: Buffer): void {
    this.#lines(stream, this.#splitters[stream].push(chunk));
  }

  /** A whole line (or several) from armhook itself or a typed handler. */
  line(text: string, stream: OutputStream = 'stdout'): void {
    this.#lines(stream, text.split(/\r\n|\r|\n/));
  }

  mask(text: string): string {
    return maskTokens(this.#masker.mask(text));
  }

  /** Flushes last lines that had no line end. */
  flush(): void {
    this.#lines('stdout', this.#splitters.stdout.end());
    this.#lines('stderr', this.#splitters.stderr.end());
  }

  #lines(stream: OutputStream, lines: string[]): void {
    if (lines.length === 0) return;
    this.#emit(stream, this.#masker.empty ? lines.map(maskTokens) : lines.map((l) => maskTokens(this.#masker.mask(l))));
  }
}

/** Where a running task writes: each chunk of lines becomes one append to the job's log. */
export class JobOutput {
  readonly #log: JobLog;
  readonly #lines: MaskedLines;
  #bytes = 0;

  constructor(log: JobLog, secrets: string[]) {
    this.#log = log;
    this.#lines = new MaskedLines(secrets, (stream, lines) => log.append(lines.map((data) => ({ event: stream, data }))));
  }

  /** Bytes of output received so far (before masking). */
  get bytes(): number {
    return this.#bytes;
  }

  chunk(stream: OutputStream, chunk: Buffer): void {
    this.#bytes += chunk.length;
    this.#lines.chunk(stream, chunk);
  }

  /** A whole line from a typed handler (or armhook itself). */
  line(text: string, stream: OutputStream = 'stdout'): void {
    this.#lines.line(text, stream);
  }

  /**
   * A handler's progress as one JSON event. Its strings are masked before they are serialised:
   * JSON escapes `"` and `\` (and control characters), so a secret holding one would not be
   * found in the text. The text is masked too, as before, for values that are not strings.
   */
  progress(data: Record<string, unknown>): void {
    const json = JSON.stringify(data, (_key, value: unknown) => (typeof value === 'string' ? this.#lines.mask(value) : value));
    this.#log.append([{ event: 'progress', data: this.#lines.mask(json) }]);
  }

  /** Flushes last lines that had no line end. */
  flush(): void {
    this.#lines.flush();
  }
}
