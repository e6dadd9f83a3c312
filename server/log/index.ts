import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: string;
  /** Human-readable lines (a terminal); JSON otherwise (journald, files, pipes). */
  pretty?: boolean;
  /** Where lines go; defaults to stdout. Tests pass a collecting stream. */
  destination?: DestinationStream;
}

/**
 * The process logger. Secrets never reach it: request lines carry the path only, parameters are
 * never logged, and the Authorization header is redacted in case a serializer is ever widened.
 */
export async function createLogger(options: LoggerOptions): Promise<Logger> {
  const base = {
    level: options.level,
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.password', '*.token'], censor: '[redacted]' },
  };
  if (options.destination) return pino(base, options.destination);
  if (options.pretty) {
    // In-process prettifier (no worker thread), loaded only when a terminal is attached.
    const { default: pretty } = await import('pino-pretty');
    return pino(base, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
  }
  return pino(base);
}
