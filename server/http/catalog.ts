import type { FastifyInstance } from 'fastify';
import type { HookCatalog } from '../hooks/index.ts';
import { describeScript, type HookDescription } from './describe.ts';

export function registerCatalogRoutes(app: FastifyInstance, options: { catalog: HookCatalog; extra: () => HookDescription[] }): void {
  const catalog = async (): Promise<{ hooks: HookDescription[]; invalid: Array<{ path: string; error: string }> }> => {
    const hooks: HookDescription[] = [];
    const invalid: Array<{ path: string; error: string }> = [];
    for (const entry of await options.catalog.list()) {
      if (entry.kind === 'script') hooks.push(describeScript(entry));
      else invalid.push({ path: `/${entry.path}`, error: entry.error });
    }
    return { hooks: [...hooks, ...options.extra()], invalid };
  };

  app.get('/', async () => ({ name: 'armhook', hooks: '/hooks', jobs: '/jobs', health: '/healthz', ready: '/readyz' }));
  app.get('/hooks', catalog);
}
