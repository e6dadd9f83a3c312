import basicAuth from '@fastify/basic-auth';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../errors.ts';
import { PUBLIC_PATHS } from './health.ts';
import { crossSiteReason } from './security.ts';
import { pathOf } from './errors.ts';

export interface Authenticator {
  authenticate(user: string, password: string): Promise<boolean>;
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Refuses cross-site browser requests that change something or start a job (routes marked
 * `config: { startsJob: true }`, e.g. GET typed handlers), then authenticates every request
 * but the health checks. Without an authenticator every caller is "anonymous" — start-up only
 * allows that on a loopback address.
 */
export async function registerAuth(app: FastifyInstance, authenticator: Authenticator | undefined): Promise<void> {
  app.decorateRequest('caller', 'anonymous');

  app.addHook('onRequest', async (request) => {
    if (!STATE_CHANGING.has(request.method) && request.routeOptions.config.startsJob !== true) return;
    const reason = crossSiteReason(request.headers);
    if (reason) throw new AppError(403, 'cross_site', `cross-site request refused (${reason}): armhook only accepts requests from its own origin or from non-browser clients; nothing was run`);
  });

  if (!authenticator) return;
  await app.register(basicAuth, {
    authenticate: { realm: 'armhook' },
    validate: async (user, password, request) => {
      if (!(await authenticator.authenticate(user, password))) throw new AppError(401, 'unauthorized', 'unknown user or wrong password');
      request.caller = user;
    },
  });
  app.addHook('onRequest', (request, reply, done) => {
    if (PUBLIC_PATHS.has(pathOf(request.url))) {
      done();
      return;
    }
    app.basicAuth(request, reply, done);
  });
}
