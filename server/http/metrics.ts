import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { JobManager } from '../jobs/index.ts';

/**
 * GET /metrics in Prometheus text (authenticated like everything else). prom-client and its
 * registry are loaded on the first scrape; until then the job manager keeps plain counters.
 */
export function registerMetricsRoute(app: FastifyInstance, options: { jobs: JobManager }): void {
  let registry: Promise<Registry> | undefined;
  const build = async (): Promise<Registry> => {
    // CommonJS: through `default`, as in tls/generate.ts (the dist/ bundle has no named exports).
    const client = (await import('prom-client')).default;
    const register = new client.Registry();
    client.collectDefaultMetrics({ register, prefix: 'armhook_' });
    // prom-client counts process CPU from the moment it is set up (here: the first scrape, which
    // loads it); the counters must cover the process's whole life, so they start at what it used so far.
    const used = process.cpuUsage();
    const startAt = (name: string, micros: number): void => {
      const metric = register.getSingleMetric(`armhook_${name}`);
      if (metric instanceof client.Counter) metric.inc(micros / 1e6);
    };
    startAt('process_cpu_user_seconds_total', used.user);
    startAt('process_cpu_system_seconds_total', used.system);
    startAt('process_cpu_seconds_total', used.user + used.system);
    const { jobs } = options;
    new client.Gauge({
      name: 'armhook_jobs_running',
      help: 'Jobs running now',
      registers: [register],
      collect() {
        this.set(jobs.running);
      },
    });
    new client.Gauge({
      name: 'armhook_jobs_queued',
      help: 'Jobs waiting for a worker',
      registers: [register],
      collect() {
        this.set(jobs.queued);
      },
    });
    new client.Counter({
      name: 'armhook_jobs_refused_total',
      help: 'Runs refused because the queue was full (429)',
      registers: [register],
      collect() {
        this.reset();
        this.inc(jobs.counters.refused);
      },
    });
    new client.Counter({
      name: 'armhook_jobs_finished_total',
      help: 'Jobs that ended, by hook and final status',
      labelNames: ['hook', 'status'],
      registers: [register],
      collect() {
        this.reset();
        for (const [key, n] of jobs.counters.finished) {
          const [hook = '', status = ''] = key.split('\u0000');
          this.inc({ hook, status }, n);
        }
      },
    });
    const durationLabels = ['hook'];
    new client.Counter({
      name: 'armhook_job_duration_seconds_sum',
      help: 'Total run time of jobs that ran, by hook (divide by _count for the mean)',
      labelNames: durationLabels,
      registers: [register],
      collect() {
        this.reset();
        for (const [hook, [, seconds]] of jobs.counters.durations) this.inc({ hook }, seconds);
      },
    });
    new client.Counter({
      name: 'armhook_job_duration_seconds_count',
      help: 'Jobs that ran, by hook',
      labelNames: durationLabels,
      registers: [register],
      collect() {
        this.reset();
        for (const [hook, [count]] of jobs.counters.durations) this.inc({ hook }, count);
      },
    });
    return register;
  };

  app.get('/metrics', async (_request, reply) => {
    registry ??= build();
    const register = await registry;
    return reply.type(register.contentType).send(await register.metrics());
  });
}
