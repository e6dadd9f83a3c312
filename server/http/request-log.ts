import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../metrics/index.ts';
import { pathOf } from './errors.ts';

/**
 * One log line per request, when its response is over (streams included): method, path — never
 * the query string, which carries parameters — status, duration, caller and job id.
 */
export function registerRequestLog(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onRequest', async (request, reply) => {
    const started = performance.now();
    reply.raw.once('close', () => {
      const seconds = (performance.now() - started) / 1000;
      const status = reply.raw.statusCode;
      metrics.httpDuration.observe([request.method, String(status)], seconds);
      if (status === 401) metrics.authFailures.inc([request.method]);
      const jobId = reply.raw.getHeader('armhook-job-id');
      request.log.info(
        {
          method: request.method,
          path: pathOf(request.url),
          status,
          ms: Math.round(seconds * 10_000) / 10,
          user: request.caller,
          ...(jobId !== undefined ? { jobId } : {}),
          ...(reply.raw.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
  });
}
