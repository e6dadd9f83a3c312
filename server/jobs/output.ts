import { LineSplitter } from './lines.ts';
import type { JobLog } from './log.ts';
import { SecretMasker } from './mask.ts';

/**
 * Where a running task writes. Raw script output is split into lines (CR, LF, CRLF), secrets
 * are masked, and each chunk becomes one append to the job's log.
 */
export class JobOutput {
  readonly #log: JobLog;
  readonly #masker: SecretMasker;
  readonly #splitters = { stdout: new LineSplitter(), stderr: new LineSplitter() };
  #bytes = 0;

  constructor(log: JobLog, secrets: string[]) {
    this.#log = log;
    this.#masker = new SecretMasker(secrets);
  }

  /** Bytes of output received so far (before masking). */
  get bytes(): number {
    return this.#bytes;
  }

  chunk(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    this.#bytes += chunk.length;
    this.#lines(stream, this.#splitters[stream].push(chunk));
  }

  /** A whole line from a typed handler (or armhook itself). */
  line(text: string, stream: 'stdout' | 'stderr' = 'stdout'): void {
    this.#lines(stream, text.split(/\r\n|\r|\n/));
  }

  progress(data: Record<string, unknown>): void {
    this.#log.append([{ event: 'progress', data: this.#masker.mask(JSON.stringify(data)) }]);
  }

  /** Flushes last lines that had no line end. */
  flush(): void {
    this.#lines('stdout', this.#splitters.stdout.end());
    this.#lines('stderr', this.#splitters.stderr.end());
  }

  #lines(stream: 'stdout' | 'stderr', lines: string[]): void {
    if (lines.length === 0) return;
    const masked = this.#masker.empty ? lines : lines.map((l) => this.#masker.mask(l));
    this.#log.append(masked.map((data) => ({ event: stream, data })));
  }
}
