// A pino logger that keeps its output in memory, for asserting on log lines in tests.
import { pino, type Logger } from 'pino';

export interface CapturedLog {
  log: Logger;
  /** Parsed log lines so far. */
  entries(): Array<{ level: number; msg: string; [key: string]: unknown }>;
  /** The raw output so far. */
  text(): string;
}

export const LEVEL = { info: 30, warn: 40, error: 50 } as const;

export function captureLog(): CapturedLog {
  const chunks: string[] = [];
  const log = pino({ level: 'trace' }, { write: (chunk: string) => void chunks.push(chunk) });
  return {
    log,
    text: () => chunks.join(''),
    entries: () => chunks.join('').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line)),
  };
}
