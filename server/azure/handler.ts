import type { Static, TSchema } from '@sinclair/typebox';
import type { Logger } from 'pino';

/**
 * The contract between the job runner and a typed Azure handler.
 * A handler never touches HTTP: it gets validated parameters, the Azure clients,
 * an abort signal (cancel / timeout) and a sink for progress, and returns its result.
 */
export interface HandlerSink {
  /** A plain output line (becomes an SSE `data:` line, and a line of the text log). */
  line(text: string): void;
  /** A progress event (SSE `event: progress`), e.g. an LRO poll or a deployment operation change. */
  progress(data: Record<string, unknown>): void;
}

export interface HandlerContext<P, Clients> {
  params: P;
  clients: Clients;
  signal: AbortSignal;
  sink: HandlerSink;
  log: Logger;
  /** The raw request body (deployments/create reads its template from it). */
  body: Buffer;
}

export interface TypedHandler<S extends TSchema = TSchema, Clients = unknown> {
  /** Hook path without a leading slash, e.g. "azure/groups/create". */
  path: string;
  method: 'GET' | 'POST';
  description: string;
  /** TypeBox schema of the query parameters (an object schema). */
  params: S;
  /**
   * Checks the raw request body before a job exists (no clients, no readiness needed): throws
   * HandlerError(400, …) when it cannot be what `run` expects. Absent = any body is accepted.
   * `run` may still parse (and refuse) the body itself.
   */
  validateBody?(body: Buffer): void;
  /** Returns the job's `result` (resource id, provisioning state, outputs...). Throws HandlerError on failure. */
  run(ctx: HandlerContext<Static<S>, Clients>): Promise<unknown>;
}

/**
 * A failure a caller can act on. `status` is the HTTP status JSON mode answers with
 * (ARM 4xx passed through, 502 otherwise); `code`/`message` go into the job's `error`.
 */
export class HandlerError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'HandlerError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
}
