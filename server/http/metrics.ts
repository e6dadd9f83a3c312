import type { FastifyInstance } from 'fastify';
import { monitorEventLoopDelay, type ELDHistogram } from 'node:perf_hooks';
import type { Metric, Registry } from 'prom-client';
import type { JobManager } from '../jobs/index.ts';
import { AppError } from '../errors.ts';
import type { Counter, Histogram, Metrics } from '../metrics/index.ts';

export interface MetricsRouteOptions {
  jobs: JobManager;
  metrics: Metrics;
  /** Expiry of the certificate new connections get now. */
  certificateNotAfter: () => Date | undefined;
}

/** prom-client's default gauges that are not what their names say. */
const REPLACED_DEFAULTS = [
  // Gauges named like counters (promtool refuses `_total` on a gauge); the labelled
  // armhook_nodejs_active_handles / _requests / _resources carry the same numbers by type.
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
  // Read from a delay histogram that prom-client creates on the first scrape: with no sample yet
  // they are NaN and 9223372036.85 s. armhook_nodejs_eventloop_delay_seconds replaces them.
  'nodejs_eventloop_lag_min_seconds',
  'nodejs_eventloop_lag_max_seconds',
  'nodejs_eventloop_lag_mean_seconds',
  'nodejs_eventloop_lag_stddev_seconds',
  'nodejs_eventloop_lag_p50_seconds',
  'nodejs_eventloop_lag_p90_seconds',
  'nodejs_eventloop_lag_p99_seconds',
];

/**
 * GET /metrics in Prometheus text (authenticated like everything else). prom-client and its
 * registry are loaded on the first scrape; until then armhook's parts record plain numbers
 * (server/metrics/) that the registry reads at each scrape.
 */
export function registerMetricsRoute(app: FastifyInstance, options: MetricsRouteOptions): void {
  // Sampling starts with the server, so the first scrape already has event-loop figures.
  const eventLoop = monitorEventLoopDelay({ resolution: 10 });
  eventLoop.enable();
  app.addHook('onClose', async () => eventLoop.disable());

  let registry: Promise<Registry> | undefined;
  app.get('/metrics', async (request, reply) => {
    // Metrics count every caller's jobs: only callers who may see all jobs read them.
    if (request.access.jobs !== 'all')
      throw new AppError(403, 'forbidden', `${request.caller} may not read metrics; they need "jobs": "all" in the access file (ARMHOOK_ACCESS)`);
    registry ??= buildRegistry(options, eventLoop);
    const register = await registry;
    return reply.type(register.contentType).send(await register.metrics());
  });
}

async function buildRegistry(options: MetricsRouteOptions, eventLoop: ELDHistogram): Promise<Registry> {
  // CommonJS: through `default`, as in tls/generate.ts (the dist/ bundle has no named exports).
  const client = (await import('prom-client')).default;
  const register = new client.Registry();
  client.collectDefaultMetrics({ register, prefix: 'armhook_' });
  for (const name of REPLACED_DEFAULTS) register.removeSingleMetric(`armhook_${name}`);
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

  const { jobs, metrics } = options;
  new client.Gauge({
    name: 'armhook_nodejs_eventloop_delay_seconds',
    help: 'Event loop delay since the previous scrape (min, max, mean, stddev, p50, p90, p99); absent when nothing was sampled',
    labelNames: ['stat'],
    registers: [register],
    collect() {
      this.reset();
      if (eventLoop.count === 0) return;
      const stats: Record<string, number> = {
        min: eventLoop.min,
        max: eventLoop.max,
        mean: eventLoop.mean,
        stddev: eventLoop.stddev,
        p50: eventLoop.percentile(50),
        p90: eventLoop.percentile(90),
        p99: eventLoop.percentile(99),
      };
      for (const [stat, nanoseconds] of Object.entries(stats)) this.set({ stat }, nanoseconds / 1e9);
      eventLoop.reset();
    },
  });
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
    help: 'Queue depth: jobs waiting for a worker',
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
  new client.Gauge({
    name: 'armhook_tls_certificate_expiry_seconds',
    help: 'Seconds until the certificate served to new connections expires (negative once expired)',
    registers: [register],
    collect() {
      this.reset();
      const notAfter = options.certificateNotAfter();
      if (notAfter) this.set((notAfter.getTime() - Date.now()) / 1000);
    },
  });
  for (const recorded of [jobs.counters.durations, metrics.httpDuration]) register.registerMetric(histogramMetric(recorded));
  for (const recorded of [jobs.counters.finished, metrics.authFailures, metrics.tokenRefreshes]) register.registerMetric(counterMetric(recorded));
  return register;
}

type Labels = Record<string, string>;
type Sample = { metricName?: string; labels: Labels; value: number };

function labelsOf(names: readonly string[], values: readonly string[]): Labels {
  return Object.fromEntries(names.map((name, i) => [name, values[i] ?? '']));
}

/**
 * A recorder exposed to the registry as a metric of its own: the registry reads `get()` at each
 * scrape and formats the samples, so nothing is copied into a prom-client object per observation.
 */
function readOnlyMetric(name: string, help: string, type: 'histogram' | 'counter', samples: () => Sample[]): Metric {
  const metric = {
    name,
    help,
    type,
    aggregator: 'sum',
    collect: () => undefined,
    get: async () => ({ name, help, type, aggregator: 'sum', values: samples() }),
    reset: () => undefined,
  };
  // The registry only needs name and get(); its type names prom-client's own classes.
  return metric as unknown as Metric;
}

function histogramMetric(histogram: Histogram): Metric {
  return readOnlyMetric(histogram.name, histogram.help, 'histogram', () => {
    const samples: Sample[] = [];
    for (const series of histogram.series()) {
      const labels = labelsOf(histogram.labelNames, series.labels);
      let cumulative = 0;
      histogram.bounds.forEach((bound, i) => {
        cumulative += series.buckets[i] ?? 0;
        samples.push({ metricName: `${histogram.name}_bucket`, labels: { ...labels, le: String(bound) }, value: cumulative });
      });
      samples.push({ metricName: `${histogram.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: series.count });
      samples.push({ metricName: `${histogram.name}_sum`, labels, value: series.sum });
      samples.push({ metricName: `${histogram.name}_count`, labels, value: series.count });
    }
    return samples;
  });
}

function counterMetric(counter: Counter): Metric {
  return readOnlyMetric(counter.name, counter.help, 'counter', () =>
    [...counter.series()].map((entry) => ({ labels: labelsOf(counter.labelNames, entry.labels), value: entry.value })),
  );
}
