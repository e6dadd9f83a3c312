import type { FastifyInstance } from 'fastify';
import { pathOf } from './errors.ts';

/**
 * One log line per request, when its response is over (streams included): method, path — never
 * the query string, which carries parameters — status, duration, caller and job id.
 */
export function registerRequestLog(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    const started = performance.now();
    reply.raw.once('close', () => {
      const jobId = reply.raw.getHeader('armhook-job-id');
      request.log.info(
        {
          method: request.method,
          path: pathOf(request.url),
          status: reply.raw.statusCode,
          ms: Math.round((performance.now() - started) * 10) / 10,
          user: request.caller,
          ...(jobId !== undefined ? { jobId } : {}),
          ...(reply.raw.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
  });
}
