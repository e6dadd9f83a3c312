import type { FastifyInstance } from 'fastify';
import type { HookCatalog } from '../hooks/index.ts';
import { describeScript, type HookDescription } from './describe.ts';
import { openApi } from './openapi.ts';

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
  app.get('/', async () => ({ name: 'armhook', hooks: '/hooks', jobs: '/jobs', console: '/ui/', openapi: '/openapi.json', health: '/healthz', ready: '/readyz' }));
  app.get('/hooks', catalog);
}
