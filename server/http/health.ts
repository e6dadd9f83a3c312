import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';

export interface ReadinessSource {
  readiness(): { ready: boolean; reasons: string[] };
}

/** Paths answered without authentication. They reveal nothing but status and reasons. */
export const PUBLIC_PATHS = new Set(['/healthz', '/readyz']);

export function registerHealthRoutes(
  app: FastifyInstance,
  options: { scriptsDir: string; azure: ReadinessSource | undefined; accepting: () => boolean },
): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const reasons: string[] = [];
    if (!options.accepting()) reasons.push('shutting down');
    try {
      await access(options.scriptsDir, constants.R_OK | constants.X_OK);
    } catch {
      reasons.push('scripts directory is not readable');
    }
    if (options.azure) reasons.push(...options.azure.readiness().reasons);
    if (reasons.length > 0) return reply.code(503).send({ status: 'not_ready', reasons });
    return { status: 'ready' };
  });
}
