/**
 * What /metrics reports, recorded as plain numbers while the server runs. prom-client (and its
 * ~20 MB) is loaded only when someone scrapes; these recorders cost a few array increments each,
 * so the hot paths (every request, every job end) never wait for it.
 */

/** Label values in the order of the metric's label names. */
export type LabelValues = readonly string[];

interface HistogramSeries {
  labels: LabelValues;
  /** Observations ≤ each upper bound (not cumulative; summed when exported). */
  buckets: number[];
  sum: number;
  count: number;
}

/** A Prometheus histogram kept as bucket counts per label set. */
export class Histogram {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Upper bounds, ascending; `+Inf` is implied. */
  readonly bounds: readonly number[];
  readonly #series = new Map<string, HistogramSeries>();

  constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    this.bounds = bounds;
  }

  observe(labels: LabelValues, value: number): void {
    if (!Number.isFinite(value)) return;
    const key = labels.join('\n');
    let series = this.#series.get(key);
    if (!series) {
      series = { labels: [...labels], buckets: new Array<number>(this.bounds.length).fill(0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    const index = this.bounds.findIndex((bound) => value <= bound);
    if (index >= 0) series.buckets[index] = (series.buckets[index] ?? 0) + 1;
    series.sum += value;
    series.count += 1;
  }

  series(): Iterable<Readonly<HistogramSeries>> {
    return this.#series.values();
  }
}

/** A monotonically increasing count per label set. */
export class Counter {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly #values = new Map<string, { labels: LabelValues; value: number }>();

  constructor(name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  inc(labels: LabelValues, by = 1): void {
    const key = labels.join('\n');
    const entry = this.#values.get(key);
    if (entry) entry.value += by;
    else this.#values.set(key, { labels: [...labels], value: by });
  }

  series(): Iterable<Readonly<{ labels: LabelValues; value: number }>> {
    return this.#values.values();
  }
}

/** Job run times: from a second's echo to an hour-long deployment. */
export const JOB_DURATION_BUCKETS = [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600] as const;
/** Request times up to the headers of a stream or the end of a short answer. */
export const HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

/** The recorders one server instance shares between its parts. */
export interface Metrics {
  /** Seconds from a request's start to its response's end, by method and status code. */
  httpDuration: Histogram;
  /** Requests answered 401 (no, unknown or wrong credentials), by method. */
  authFailures: Counter;
  /** Managed-identity tokens fetched (the first and each refresh), by source (imds, library) and outcome (ok, error). */
  tokenRefreshes: Counter;
}

export function createMetrics(): Metrics {
  return {
    httpDuration: new Histogram(
      'armhook_http_request_duration_seconds',
      'Time from request to the end of its response, streams included',
      ['method', 'code'],
      HTTP_DURATION_BUCKETS,
    ),
    authFailures: new Counter('armhook_auth_failures_total', 'Requests refused for missing or wrong credentials (401)', ['method']),
    tokenRefreshes: new Counter('armhook_token_refreshes_total', 'Managed-identity tokens fetched (the first and every refresh), by source and outcome', [
      'source',
      'outcome',
    ]),
  };
}
