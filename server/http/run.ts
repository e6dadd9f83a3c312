import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  addSourcedParams,
  applyDeclarations,
  collectParams,
  jsonFieldNames,
  maskedParams,
  secretValues,
  type AzSetup,
  type HookCatalog,
  type ScriptHook,
  type ScriptRunOptions,
  type ScriptRunResult,
} from '../hooks/index.ts';
import type { JobLog, JobManager, JobRecord, JobSpec, LiveJob } from '../jobs/index.ts';
import { requireRun } from './access.ts';
import { describeScript } from './describe.ts';
import { subscriptionValidation, webhookValidation } from './eventgrid.ts';
import { runKey } from './idempotency.ts';
import { AppError, quote } from '../errors.ts';
import { methodNotAllowed, pathOf, queryOf } from './errors.ts';
import { runMode, type RunMode } from './negotiate.ts';
import { openStream, streamJob } from './stream.ts';
import { scriptTask } from './tasks.ts';

export interface RunRouteOptions {
  catalog: HookCatalog;
  jobs: JobManager;
  /** seconds */
  timeout: number;
  killGraceMs: number;
  keepAliveMs: number;
  outputLimit: number;
  /** The installation's key for idempotency fingerprints (loadFingerprintKey). */
  fingerprintKey: Buffer;
  azureEnv: () => Record<string, string>;
  az: AzSetup;
  spawn: (options: ScriptRunOptions) => Promise<ScriptRunResult>;
  scratchDir: string;
}

const PASSED_THROUGH = new Set([400, 403, 404, 409, 500]);

/** The HTTP status an `Accept: application/json` run answers with, from the job's result. */
export function httpStatusFor(record: JobRecord): number {
  switch (record.status) {
    case 'succeeded':
      return 200;
    case 'timed-out':
      return 504;
    case 'cancelled':
      return 409;
    case 'interrupted':
      return 503;
    default: {
      if (record.kind === 'script') return 500;
      // What the caller can act on passes through (ARM's 400/403/404/409, or 500 for a script
      // that failed inside a VM); anything else from ARM — throttling included, so a 429 from
      // armhook always means its own queue is full — is a bad gateway.
      const status = record.error?.status;
      return typeof status === 'number' && PASSED_THROUGH.has(status) ? status : 502;
    }
  }
}

/** Output lines of a finished job for JSON mode, capped at `limit` bytes. */
export async function collectOutput(log: JobLog, limit: number): Promise<{ output: string; outputTruncated: boolean }> {
  const reader = log.reader(0);
  let output = '';
  let bytes = 0;
  try {
    for (let batch = await reader.next(); batch !== null && batch.length > 0; batch = await reader.next()) {
      for (const event of batch) {
        if (event.event !== 'stdout' && event.event !== 'stderr') continue;
        const size = Buffer.byteLength(event.data) + 1;
        if (bytes + size > limit) return { output, outputTruncated: true };
        output += `${event.data}\n`;
        bytes += size;
      }
    }
    return { output, outputTruncated: false };
  } finally {
    await reader.close();
  }
}

/**
 * Answers a run in the mode the caller asked for. Every mode carries Armhook-Job-Id; streaming
 * modes send their headers as soon as the job is accepted (so the status is 200 even if the job
 * later fails: the final `done` event or status line tells).
 */
export async function respondWithJob(
  job: Pick<LiveJob, 'record' | 'log' | 'done'>,
  mode: RunMode,
  reply: FastifyReply,
  options: { keepAliveMs: number; outputLimit: number },
  how: { repeat?: boolean } = {},
): Promise<void> {
  const id = job.record.id;
  const request = reply.request;
  if (how.repeat)
    request.log.info(
      { audit: 'job-repeat', caller: request.caller, source: request.ip, hook: job.record.hook, jobId: id },
      'repeated request answered with the job its idempotency key started',
    );
  else request.log.info({ audit: 'job-start', caller: job.record.caller, source: request.ip, hook: job.record.hook, jobId: id }, 'job accepted');
  // The job's record was written (synchronously) when it was accepted: a crash from here on
  // can't lose it.
  void reply.header('Armhook-Job-Id', id);
  if (mode === 'async') {
    await reply
      .code(202)
      .header('Location', `/jobs/${id}`)
      .send({ jobId: id, id, status: job.record.status, location: `/jobs/${id}`, events: `/jobs/${id}/events`, log: `/jobs/${id}/log` });
    return;
  }
  if (mode === 'json') {
    // The status depends on how the job ends, so the whole response waits. (Not a 103 Early
    // Hints with the id: common clients — wrk, Python's http.client — take a 1xx for the final
    // response.) Callers that need the id at once use SSE or Prefer: respond-async.
    const record = await job.done;
    const output = await collectOutput(job.log, options.outputLimit);
    await reply.code(httpStatusFor(record)).send({
      jobId: id,
      ...record,
      ...output,
      ...(output.outputTruncated ? { outputNote: `output cut at ${options.outputLimit} bytes; GET /jobs/${id}/log has all of it` } : {}),
    });
    return;
  }
  const format = mode === 'sse' ? 'sse' : 'text';
  await streamJob(openStream(reply, format, id), job.log, { format, afterId: 0, keepAliveMs: options.keepAliveMs });
}

/**
 * Submits a run and answers it in the caller's mode; with an idempotency key, at most once per
 * caller and key: a repeat is answered with the job the key started (202 repeats its Location,
 * SSE replays and follows it, JSON waits for it).
 */
export async function submitRun(
  jobs: JobManager,
  spec: JobSpec,
  body: Buffer,
  mode: RunMode,
  reply: FastifyReply,
  options: { keepAliveMs: number; outputLimit: number; fingerprintKey: Buffer },
): Promise<void> {
  const run = runKey(reply.request, spec, body, options.fingerprintKey);
  if (run === undefined) {
    await respondWithJob(await jobs.submit(spec), mode, reply, options);
    return;
  }
  const submission = await jobs.submitOnce({ ...spec, idempotency: { caller: spec.caller, key: run.key, fingerprint: run.fingerprint } });
  if (submission.fingerprint !== run.fingerprint) {
    throw new AppError(
      422,
      'idempotency_key_reused',
      `this Idempotency-Key already started job ${submission.id} with other parameters or another body; use a new key for a new request`,
    );
  }
  const live = jobs.live(submission.id);
  const record = live?.record ?? (await jobs.get(submission.id));
  const log = live?.log ?? (await jobs.openLog(submission.id));
  if (!record || !log)
    throw new AppError(409, 'idempotent_job_gone', `the job this Idempotency-Key started (${submission.id}) is no longer kept; use a new key`);
  await respondWithJob({ record, log, done: live?.done ?? Promise.resolve(record) }, mode, reply, options, { repeat: submission.repeat });
}

/**
 * A job's timeout in seconds: the hook's (or the server's default), lowered by an
 * `X-Hook-Timeout: <seconds>` request header — never raised above the hook's maximum.
 */
export function timeoutSeconds(request: FastifyRequest, hookMax: number): number {
  const raw = request.headers['x-hook-timeout'];
  if (raw === undefined) return hookMax;
  const value = String(raw).trim();
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new AppError(400, 'bad_timeout', `X-Hook-Timeout must be whole seconds ≥ 1 (this hook allows at most ${hookMax})`);
  return Math.min(Number(value), hookMax);
}

/** A reconnecting EventSource repeats its last request with Last-Event-ID: never start a job for it. */
export function refuseResume(request: FastifyRequest): void {
  if (request.headers['last-event-id'] !== undefined) {
    throw new AppError(
      409,
      'resume_not_run',
      'this request carries Last-Event-ID (a reconnecting event stream), so it does not start a job; resume the stream with GET /jobs/<id>/events (the id is in the Armhook-Job-Id header and the first event)',
    );
  }
}

/** The concurrency key of a run: the hook, plus the values of the parameters it is limited per. */
function concurrencyOf(hook: ScriptHook, params: Map<string, string>): { key: string; limit: number } | undefined {
  const spec = hook.header.concurrency;
  if (!spec) return undefined;
  const value = (name: string): string => {
    const raw = params.get(name) ?? '';
    return spec.caseSensitive ? raw : raw.toLowerCase();
  };
  const per = spec.per.map((name) => `${name}=${encodeURIComponent(value(name))}`).join('&');
  return { key: `${hook.path}?${per}`, limit: spec.limit };
}

/** A POST's parameters (query, body, declared headers and fields) checked against the script's declarations. */
function scriptParams(request: FastifyRequest, hook: ScriptHook, body: Buffer): Map<string, string> {
  const declared = hook.header.params;
  const contentType = request.headers['content-type'];
  const given = collectParams(queryOf(request.url), contentType, body, { jsonFields: jsonFieldNames(declared) });
  addSourcedParams(given, declared, { contentType, body, headers: request.headers });
  return applyDeclarations(given, hook.header, hook.path);
}

/** The job a POST to a script starts: secrets masked in what is stored, its timeout and concurrency key, the task that runs it. */
function scriptJob(request: FastifyRequest, hook: ScriptHook, params: Map<string, string>, body: Buffer, options: RunRouteOptions): JobSpec {
  const declared = hook.header.params;
  return {
    hook: hook.path,
    kind: 'script',
    method: 'POST',
    caller: request.caller,
    params: maskedParams(params, declared),
    secrets: secretValues(params, declared),
    timeoutMs: timeoutSeconds(request, hook.header.timeout ?? options.timeout) * 1000,
    ...(hook.header.concurrency ? { concurrency: concurrencyOf(hook, params) } : {}),
    task: scriptTask({
      hook,
      params,
      body,
      user: request.caller,
      method: 'POST',
      killGraceMs: options.killGraceMs,
      azureEnv: options.azureEnv,
      inheritEnv: process.env,
      az: options.az,
      spawn: options.spawn,
      scratchDir: options.scratchDir,
    }),
  };
}

export function registerRunRoutes(app: FastifyInstance, options: RunRouteOptions): void {
  // The access rules come first: a caller who may not run a path learns nothing about it.
  const resolve = async (request: FastifyRequest): Promise<ScriptHook> => {
    const path = pathOf(request.url).slice(1);
    requireRun(request, path);
    const hook = await options.catalog.resolve(path);
    if (!hook) throw new AppError(404, 'unknown_hook', `no hook at ${quote(`/${path}`)}; GET /hooks lists the hooks`);
    return hook;
  };

  // GET describes a script; it never runs one. HEAD is the same without a body.
  app.route({
    method: 'GET',
    url: '/*',
    exposeHeadRoute: false,
    handler: async (request) => describeScript(await resolve(request)),
  });
  app.route({
    method: 'HEAD',
    url: '/*',
    handler: async (request, reply) => {
      await resolve(request);
      await reply.code(200).type('application/json; charset=utf-8').send();
    },
  });

  app.route({
    method: 'POST',
    url: '/*',
    handler: async (request, reply) => {
      refuseResume(request);
      const hook = await resolve(request);
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const validation = subscriptionValidation(request, body);
      if (validation) return reply.send(validation);
      const params = scriptParams(request, hook, body);
      const mode = runMode(request.headers, hook.header.respond ?? 'sse');
      const spec = scriptJob(request, hook, params, body, options);
      await submitRun(options.jobs, spec, body, mode, reply, options);
    },
  });

  app.route({
    method: ['PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url: '/*',
    handler: async (request, reply) => {
      if (request.method === 'OPTIONS' && request.headers['webhook-request-origin'] !== undefined) {
        await resolve(request);
        if (await webhookValidation(request, reply)) return;
      }
      await methodNotAllowed(reply, 'GET, HEAD, POST', 'hooks run on POST; GET describes them');
    },
  });
}
