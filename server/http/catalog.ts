import type { FastifyInstance } from 'fastify';
import type { HookCatalog } from '../hooks/index.ts';
import { describeScript, type HookDescription } from './describe.ts';

export function registerCatalogRoutes(app: FastifyInstance, options: { catalog: HookCatalog; extra: () => Promise<HookDescription[]> }): void {
  const catalog = async (): Promise<{ hooks: HookDescription[]; invalid: Array<{ path: string; error: string }> }> => {
    const hooks: HookDescription[] = [];
    const invalid: Array<{ path: string; error: string }> = [];
    for (const entry of await options.catalog.list()) {
      if (entry.kind === 'script') hooks.push(describeScript(entry));
      else invalid.push({ path: `/${entry.path}`, error: entry.error });
    }
    return { hooks: [...hooks, ...(await options.extra())], invalid };
  };

  app.get('/openapi.json', async () => openApi((await catalog()).hooks));
  app.get('/', async () => ({ name: 'armhook', hooks: '/hooks', jobs: '/jobs', health: '/healthz', ready: '/readyz' }));
  app.get('/hooks', catalog);
}

const JOB_RESPONSES = {
  '200': { description: 'SSE stream (default), plain text (Accept: text/plain) or, with Accept: application/json, the finished job record with its output' },
  '202': { description: 'Prefer: respond-async: the job was accepted; Location: /jobs/<id>' },
  '400': { description: 'a parameter is missing, unknown or invalid; nothing ran' },
  '401': { description: 'authentication required' },
  '429': { description: 'the queue is full; retry after Retry-After seconds' },
};

/** An OpenAPI 3.1 description of the hooks and handlers as they are now, for clients and tooling. */
export function openApi(hooks: HookDescription[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const hook of hooks) {
    paths[hook.path] = {
      [hook.method.toLowerCase()]: {
        summary: hook.description || hook.path,
        tags: [hook.kind],
        parameters: (hook.params ?? []).map((p) => ({
          name: p.name,
          in: 'query',
          required: p.required,
          description: p.description,
          schema: { type: 'string', ...(p.pattern ? { pattern: `^(?:${p.pattern})$` } : {}), ...(p.default !== undefined ? { default: p.default } : {}), ...(p.secret ? { format: 'password' } : {}) },
        })),
        ...(hook.params === null ? { description: 'Undeclared: any parameter name matching ^[a-z][a-z0-9_]*$ is accepted.' } : {}),
        responses: JOB_RESPONSES,
      },
    };
  }
  paths['/jobs'] = { get: { summary: 'Jobs, newest first (filters hook, status, caller; paged with next)', responses: { '200': { description: '{ items, next }' } } } };
  paths['/jobs/{id}'] = {
    get: { summary: 'A job record', responses: { '200': { description: 'the record' }, '404': { description: 'unknown job' } } },
    delete: { summary: 'Cancel a job', responses: { '200': { description: 'the cancelled record' }, '409': { description: 'already ended' } } },
  };
  paths['/jobs/{id}/events'] = { get: { summary: 'Replay then follow the job as SSE (honours Last-Event-ID)', responses: { '200': { description: 'text/event-stream' } } } };
  paths['/jobs/{id}/log'] = { get: { summary: 'The output so far as plain text', responses: { '200': { description: 'text/plain' } } } };
  return {
    openapi: '3.1.0',
    info: { title: 'armhook', version: '1' },
    components: { securitySchemes: { basic: { type: 'http', scheme: 'basic' } } },
    security: [{ basic: [] }],
    paths,
  };
}
