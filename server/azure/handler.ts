import type { Static, TObject } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { AzureClients } from './clients.ts';

/**
 * The contract between the job runner and a typed Azure handler.
 * A handler never touches HTTP: it gets validated parameters, the Azure clients,
 * an abort signal (cancel / timeout) and a sink for progress, and returns its result.
 * A failure a caller can act on is an AppError (ARM's 4xx passed through, 502 otherwise).
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

/** What a handler module defines: everything but where it is routed (that is its registry row). */
export interface HandlerDefinition<S extends TObject> {
  description: string;
  /** TypeBox schema of the query parameters (an object schema). */
  params: S;
  /**
   * Checks the raw request body before a job exists (no clients, no readiness needed): throws
   * AppError(400, …) when it cannot be what `run` expects. Absent = any body is accepted.
   * `run` may still parse (and refuse) the body itself.
   */
  validateBody?(body: Buffer): void;
  /** Returns the job's `result` (resource id, provisioning state, outputs...). Throws AppError on failure. */
  run(ctx: HandlerContext<Static<S>, AzureClients>): Promise<unknown>;
}

/** A handler definition with its parameter type erased, so the registry can hold them all. */
export interface AzureHandler {
  description: string;
  params: TObject;
  validateBody?(body: Buffer): void;
  run(ctx: HandlerContext<unknown, AzureClients>): Promise<unknown>;
}

/** Keeps the schema's type for `ctx.params` while the handler is written, and erases it for the registry. */
export function defineHandler<S extends TObject>(definition: HandlerDefinition<S>): AzureHandler {
  return {
    ...definition,
    // The job runner validates parameters against `definition.params` before `run` is called.
    run: (ctx) => definition.run({ ...ctx, params: ctx.params as Static<S> }),
  };
}

/** How a handler's request body is read: as form parameters (like scripts), or as its own document. */
export type BodyUse = 'params' | 'document';

/** A handler as the rest of armhook sees it: its registry row and definition, bound to the Azure service. */
export interface TypedHandler {
  /** Hook path without a leading slash, e.g. "azure/groups/create". */
  path: string;
  method: 'GET' | 'POST';
  body: BodyUse;
  description: string;
  params: TObject;
  validateBody?(body: Buffer): void;
  /** Checks readiness and supplies the ARM clients itself: `clients` may be anything (ignored). */
  run(ctx: HandlerContext<unknown, unknown>): Promise<unknown>;
}
