import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { HookCatalog } from '../hooks/index.ts';
import { describeScript, type HookDescription } from './describe.ts';
import { openApi } from './openapi.ts';

export function registerCatalogRoutes(app: FastifyInstance, options: { catalog: HookCatalog; extra: () => Promise<HookDescription[]> }): void {
  // Each caller sees only the hooks and handlers it may run.
  const catalog = async (request: FastifyRequest): Promise<{ hooks: HookDescription[]; invalid: Array<{ path: string; error: string }> }> => {
    const mayRun = (path: string): boolean => request.access.mayRun(path.replace(/^\//, ''));
    const hooks: HookDescription[] = [];
    const invalid: Array<{ path: string; error: string }> = [];
    for (const entry of await options.catalog.list()) {
      if (!mayRun(entry.path)) continue;
      if (entry.kind === 'script') hooks.push(describeScript(entry));
      else invalid.push({ path: `/${entry.path}`, error: entry.error });
    }
    return { hooks: [...hooks, ...(await options.extra()).filter((hook) => mayRun(hook.path))], invalid };
  };

  app.get('/openapi.json', async (request) => openApi((await catalog(request)).hooks));
  app.get('/', async () => ({
    name: 'armhook',
    hooks: '/hooks',
    jobs: '/jobs',
    console: '/ui/',
    openapi: '/openapi.json',
    health: '/healthz',
    ready: '/readyz',
  }));
  app.get('/hooks', catalog);
}
