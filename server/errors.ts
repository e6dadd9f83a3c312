/**
 * The one error type of armhook's layers: something a caller can act on, with the HTTP status it
 * answers with, a stable code, a message that says what to do, and data the record keeps.
 *
 * Layers below http speak in these terms too (the job manager's `queue_full`, a handler's
 * `arm_forbidden`); only http turns them into a response: `{ error: code, message }`, with
 * `Retry-After` when `retryAfterSeconds` is set. A job records a handler's failure as
 * `{ ...details, code, message, status }`.
 */
export class AppError extends Error {
  readonly status: number;
  readonly code: string;
  /** Structured facts about the failure (ARM's code, the resource…); part of a job's `error`. */
  readonly details: Record<string, unknown> | undefined;
  /** When retrying makes sense, after how long (becomes the Retry-After header). */
  readonly retryAfterSeconds: number | undefined;
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>, options?: { retryAfterSeconds?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }

  /** The same failure, retryable after `seconds`. */
  retryAfter(seconds: number): AppError {
    return new AppError(this.status, this.code, this.message, this.details, { retryAfterSeconds: seconds, cause: this.cause });
  }
}

/** Start-up refused (a setting, a file, the scripts): the message says what to change. */
export class StartupError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StartupError';
  }
}

/** Characters of caller input an error message quotes at most. */
export const QUOTE_MAX = 64;

/**
 * Caller input as an error message may show it: a JSON-escaped prefix of at most QUOTE_MAX
 * characters (never splitting a surrogate pair), with how much was left out. Error answers never
 * grow with the input.
 */
export function quote(input: string): string {
  if (input.length <= QUOTE_MAX) return JSON.stringify(input);
  const end = /[\uD800-\uDBFF]/.test(input[QUOTE_MAX - 1] ?? '') ? QUOTE_MAX - 1 : QUOTE_MAX;
  return `${JSON.stringify(input.slice(0, end))}… (${input.length - end} more characters)`;
}
