import type { TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AzureService, TypedHandler } from '../azure/index.ts';
import { AppError, quote } from '../errors.ts';
import { collectParams } from '../hooks/index.ts';
import type { JobManager, JobSpec, Task } from '../jobs/index.ts';
import type { HookDescription } from './describe.ts';
import { requireRun } from './access.ts';
import { methodNotAllowed, queryOf } from './errors.ts';
import { runMode } from './negotiate.ts';
import { refuseResume, submitRun, timeoutSeconds } from './run.ts';

interface SchemaProperty {
  type?: string;
  description?: string;
  pattern?: string;
  default?: unknown;
}

/** The parameters of a handler as the catalog shows them, from its TypeBox schema. */
export function describeHandler(handler: TypedHandler): HookDescription {
  const schema = handler.params as unknown as { properties?: Record<string, SchemaProperty>; required?: string[] };
  const required = new Set(schema.required ?? []);
  return {
    path: `/${handler.path}`,
    method: handler.method,
    kind: 'handler',
    description: handler.description,
    params: Object.entries(schema.properties ?? {}).map(([name, p]) => ({
      name,
      required: required.has(name),
      secret: false,
      ...(p.pattern !== undefined ? { pattern: p.pattern } : {}),
      ...(p.default !== undefined ? { default: typeof p.default === 'string' ? p.default : JSON.stringify(p.default) } : {}),
      description: p.description ?? '',
    })),
    ...(handler.body === 'document' ? { body: 'document' as const } : {}),
  };
}

/** Validates query/body parameters against a handler's schema; 400 names the first problem. */
export async function handlerParams(handler: TypedHandler, params: Map<string, string>): Promise<unknown> {
  const { Value } = await import('@sinclair/typebox/value');
  const schema = handler.params as TSchema & { properties?: Record<string, unknown> };
  const known = Object.keys(schema.properties ?? {});
  for (const name of params.keys()) {
    if (!known.includes(name)) {
      throw new AppError(400, 'unknown_param', `/${handler.path} has no parameter ${quote(name)}; it takes: ${known.join(', ') || 'none'}`);
    }
  }
  const value = Value.Default(schema, Value.Convert(schema, Object.fromEntries(params)));
  const first = Value.Errors(schema, value).First();
  if (first) {
    const name = first.path.replace(/^\//, '') || 'parameters';
    throw new AppError(400, 'invalid_param', `parameter "${name}" of /${handler.path}: ${first.message}`);
  }
  return value;
}

function handlerTask(handler: TypedHandler, params: unknown, body: Buffer, log: Logger): Task {
  return async (context) => {
    try {
      const result = await handler.run({
        params,
        clients: undefined,
        signal: context.signal,
        body,
        log: log.child({ jobId: context.jobId, hook: handler.path }),
        sink: { line: (text) => context.output.line(text), progress: (data) => context.output.progress(data) },
      });
      return { ok: true, exitCode: null, result };
    } catch (err) {
      if (err instanceof AppError) {
        context.output.line(`armhook: ${err.message}`, 'stderr');
        return { ok: false, exitCode: null, error: { ...err.details, code: err.code, message: err.message, status: err.status } };
      }
      throw err;
    }
  };
}

/** Typed Azure handlers: same job model, output modes and auth as scripts. */
export function registerAzureRoutes(
  app: FastifyInstance,
  options: { azure: AzureService; jobs: JobManager; log: Logger; timeout: number; keepAliveMs: number; outputLimit: number; fingerprintKey: Buffer },
): void {
  const find = async (path: string): Promise<TypedHandler> => {
    const handler = (await options.azure.loadHandlers()).find((h) => h.path === path);
    if (!handler) throw new Error(`typed handler ${path} is routed but not defined`);
    return handler;
  };
  for (const route of options.azure.routes) {
    const url = `/${route.path}`;
    // The other methods on a handler's path never run it: GET/HEAD describe a POST handler (as
    // for scripts), HEAD describes a GET handler, anything else is 405 naming what is allowed.
    const allow = route.method === 'GET' ? 'GET, HEAD' : 'GET, HEAD, POST';
    if (route.method === 'POST') {
      app.get(url, { exposeHeadRoute: false }, async (request) => {
        requireRun(request, route.path);
        return describeHandler(await find(route.path));
      });
    }
    app.head(url, async (request, reply) => {
      requireRun(request, route.path);
      return reply.code(200).type('application/json; charset=utf-8').send();
    });
    app.route({
      method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].filter((m) => m !== route.method && !(m === 'GET' && route.method === 'POST')),
      url,
      handler: (_request, reply) => methodNotAllowed(reply, allow, `${url} runs on ${route.method}${route.method === 'POST' ? '; GET describes it' : ''}`),
    });
    app.route({
      method: route.method,
      url,
      exposeHeadRoute: false,
      // GET handlers start jobs too: the cross-site check (http/auth.ts) covers them.
      config: { startsJob: true },
      handler: async (request, reply) => {
        requireRun(request, route.path);
        refuseResume(request);
        const handler = await find(route.path);
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        // A handler whose body is its own document (a template) takes parameters from the query only.
        const contentType = handler.body === 'document' ? undefined : request.headers['content-type'];
        const raw = collectParams(queryOf(request.url), contentType, body);
        const params = await handlerParams(handler, raw);
        options.azure.requireReady();
        // A body the handler can't use is refused before a job exists (deployments' template).
        handler.validateBody?.(body);
        const spec: JobSpec = {
          hook: handler.path,
          kind: 'handler',
          method: handler.method,
          caller: request.caller,
          params: Object.fromEntries(raw),
          secrets: [],
          timeoutMs: timeoutSeconds(request, options.timeout) * 1000,
          task: handlerTask(handler, params, body, options.log),
        };
        await submitRun(options.jobs, spec, body, runMode(request.headers), reply, options);
      },
    });
  }
}
