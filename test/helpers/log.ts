// A pino logger that keeps its output in memory, for asserting on log lines in tests.
import { pino, type Logger } from 'pino';

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface CapturedLog {
  log: Logger;
  /** Parsed log lines so far. */
  entries(): LogLine[];
  /** The same as entries(). */
  lines(): LogLine[];
  /** The raw output so far. */
  text(): string;
}

export const LEVEL = { info: 30, warn: 40, error: 50 } as const;

export function captureLog(): CapturedLog {
  const chunks: string[] = [];
  const log = pino({ level: 'trace' }, { write: (chunk: string) => void chunks.push(chunk) });
  const entries = (): LogLine[] =>
    chunks
      .join('')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as LogLine);
  return { log, text: () => chunks.join(''), entries, lines: entries };
}
