/**
 * 1. Dispatch: the echo hook (one line), 16 connections, armhook in SSE and JSON mode and
 * webhook, all over TLS; only 2xx responses count. armhook authenticates every request with
 * basic auth (a bcrypt htpasswd user, as on a VM: after the first request the verified
 * credentials come from its cache), webhook needs none. A fourth target is armhook JSON with an
 * Entra ID bearer token (the Entra fake's tenant; every request's token is verified: RS256 and
 * claims), and the verification alone is timed in this process.
 */
import type { Scenario } from '../lib/context.ts';
import { startProfiling } from '../lib/profile.ts';
import { fetchJson, fetchText } from '../lib/http.ts';
import { fmtInt, fmtMs, fmtRatio } from '../lib/report.ts';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { EntraVerifier } from '../../server/auth/entra.ts';
import { benchBasicAuth, entraEnv, startArmhook, startWebhook, type Fakes, type RunningServer } from '../lib/servers.ts';
import { ratio } from '../lib/stats.ts';
import { runWrk, type WrkResult } from '../lib/wrk.ts';

const BASIC = { authorization: benchBasicAuth() };
const SSE = { accept: 'text/event-stream', ...BASIC };
const JSON_MODE = { accept: 'application/json', ...BASIC };

export async function measureLoad(
  server: RunningServer,
  o: {
    method: 'GET' | 'POST';
    path: string;
    headers: Record<string, string>;
    seconds: number;
    warmupSeconds: number;
    connections: number;
    threads: number;
    dir: string;
  },
): Promise<WrkResult> {
  await runWrk(server, { ...o, seconds: o.warmupSeconds });
  return runWrk(server, o);
}

/**
 * One result from several rounds against the same target: counts and CPU summed, req/s over the
 * total time; latency percentiles are the request-weighted mean of the rounds' (wrk reports
 * percentiles, not samples), max the largest.
 */
function combine(results: WrkResult[]): WrkResult | undefined {
  const first = results[0];
  if (!first || results.length === 1) return first;
  const sum = (f: (r: WrkResult) => number): number => results.reduce((total, r) => total + f(r), 0);
  const requests = sum((r) => r.requests);
  const ok2xx = sum((r) => r.ok2xx);
  const seconds = sum((r) => r.seconds);
  const weighted = (f: (r: WrkResult) => number): number => (requests > 0 ? sum((r) => f(r) * r.requests) / requests : 0);
  const cpuWeighted = (f: (r: WrkResult) => number | undefined): number | undefined =>
    results.every((r) => f(r) !== undefined) && ok2xx > 0 ? sum((r) => (f(r) ?? 0) * r.ok2xx) / ok2xx : undefined;
  const byProcess = first.serverCpuMsPerRequestByProcess?.map((p, i) => ({
    command: p.command,
    ms: cpuWeighted((r) => r.serverCpuMsPerRequestByProcess?.[i]?.ms) ?? p.ms,
  }));
  const cpu = cpuWeighted((r) => r.serverCpuMsPerRequest);
  return {
    url: first.url,
    seconds,
    connections: first.connections,
    requests,
    ok2xx,
    other: sum((r) => r.other),
    informational: sum((r) => r.informational),
    rps2xx: ok2xx / seconds,
    p50: weighted((r) => r.p50),
    p90: weighted((r) => r.p90),
    p99: weighted((r) => r.p99),
    max: Math.max(...results.map((r) => r.max)),
    mean: weighted((r) => r.mean),
    errors: {
      connect: sum((r) => r.errors.connect),
      read: sum((r) => r.errors.read),
      write: sum((r) => r.errors.write),
      status: sum((r) => r.errors.status),
      timeout: sum((r) => r.errors.timeout),
    },
    ...(cpu !== undefined ? { serverCpuMsPerRequest: cpu } : {}),
    ...(byProcess ? { serverCpuMsPerRequestByProcess: byProcess } : {}),
    raw: results.map((r) => r.raw).join('\n---\n'),
  };
}

const TOKEN_VERIFICATIONS = 2000;

/** CPU time of one bearer-token verification (keys already fetched), µs. */
async function tokenVerificationMicros(fakes: Fakes, token: string): Promise<number> {
  const verifier = new EntraVerifier({
    tenant: fakes.entra.tenant,
    audiences: [fakes.entra.audience],
    authority: fakes.entra.url,
    log: pino({ level: 'silent' }),
    ca: readFileSync(fakes.caFile, 'utf8'),
  });
  await verifier.verify(token);
  const start = process.cpuUsage();
  for (let i = 0; i < TOKEN_VERIFICATIONS; i++) await verifier.verify(token);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / TOKEN_VERIFICATIONS;
}

function latencyCell(r: WrkResult | undefined): string {
  return r ? `${fmtMs(r.p50)} / ${fmtMs(r.p99)}` : '—';
}

export function wrkNotes(label: string, r: WrkResult): string[] {
  const notes: string[] = [];
  if (r.other > 0) notes.push(`${label}: ${r.other} non-2xx responses (not counted).`);
  if (r.informational > 0)
    notes.push(`${label}: **${r.informational} 1xx responses** — wrk takes a 1xx for the final response, so these figures are not valid.`);
  const e = r.errors;
  if (e.connect + e.read + e.write + e.timeout > 0)
    notes.push(`${label}: socket errors connect ${e.connect}, read ${e.read}, write ${e.write}, timeout ${e.timeout}.`);
  return notes;
}

export const dispatch: Scenario = {
  id: '1',
  title: 'Dispatch',
  budgetMs: (c) => (4 * (c.loadSeconds + c.warmupSeconds) + 90) * 1000,
  async run(ctx, out) {
    const { config, fx, fakes } = ctx;
    const load = { seconds: config.loadSeconds, warmupSeconds: config.warmupSeconds, connections: config.connections, threads: config.wrkThreads, dir: fx.tmp };
    let sse: WrkResult | undefined;
    let json: WrkResult | undefined;
    let peer: WrkResult | undefined;
    let bearer: WrkResult | undefined;
    const token = await fakes.entra.token();
    const BEARER_JSON = { accept: 'application/json', authorization: `Bearer ${token}` };

    const profiling = startProfiling(config.profile, config.benchDir, config.root);
    const ah = await startArmhook(config, fx, 'dispatch', {
      workers: config.dispatchWorkers,
      fakes,
      env: { ARMHOOK_HTPASSWD: fx.htpasswd, ...entraEnv(fakes), ...profiling.env },
    });
    const wh = await startWebhook(fx, 'dispatch');
    try {
      const probe = await fetchText(ah.target, '/echo', { method: 'POST', headers: SSE });
      if (probe.status !== 200 || !probe.body.includes('\ndata: hello\n') || !/event: done\ndata: [^\n]*"status":"succeeded"/.test(probe.body)) {
        throw new Error(`armhook SSE echo did not answer as expected: HTTP ${probe.status}\n${probe.body.slice(0, 400)}`);
      }
      const probeJson = await fetchJson<{ output?: string; status?: string }>(ah.target, '/echo', { method: 'POST', headers: JSON_MODE });
      if (probeJson.status !== 200 || probeJson.json.output !== 'hello\n')
        throw new Error(`armhook JSON echo: HTTP ${probeJson.status} ${JSON.stringify(probeJson.json).slice(0, 300)}`);
      const probeBearer = await fetchJson<{ caller?: string }>(ah.target, '/echo', { method: 'POST', headers: BEARER_JSON });
      if (probeBearer.status !== 200 || !probeBearer.json.caller?.startsWith('entra:'))
        throw new Error(`armhook JSON echo with a bearer token: HTTP ${probeBearer.status} ${JSON.stringify(probeBearer.json).slice(0, 300)}`);
      const probeWh = await fetchText(wh.target, '/hooks/echo', { method: 'POST' });
      if (probeWh.status !== 200 || probeWh.body !== 'hello\n') throw new Error(`webhook echo: HTTP ${probeWh.status} ${JSON.stringify(probeWh.body)}`);

      // Other work on this shared machine comes and goes: measuring one server after the other
      // let a quiet or busy spell favour one side. So the three targets take turns, in rounds
      // of a few seconds each, and each total sums its rounds.
      const rounds = config.loadSeconds >= 8 ? 4 : 1;
      const slice = { ...load, seconds: config.loadSeconds / rounds };
      const targets = [
        { name: 'armhook SSE', server: ah, path: '/echo', headers: SSE, results: [] as WrkResult[] },
        { name: 'armhook JSON', server: ah, path: '/echo', headers: JSON_MODE, results: [] as WrkResult[] },
        { name: 'webhook', server: wh, path: '/hooks/echo', headers: {}, results: [] as WrkResult[] },
        { name: 'armhook JSON bearer', server: ah, path: '/echo', headers: BEARER_JSON, results: [] as WrkResult[] },
      ];
      for (const t of targets) await runWrk(t.server, { method: 'POST', path: t.path, headers: t.headers, ...load, seconds: load.warmupSeconds });
      ctx.log(`${rounds} round(s) of ${slice.seconds} s per target, ${config.connections} connections: ${targets.map((t) => t.name).join(', ')}`);
      for (let round = 0; round < rounds; round++) {
        for (const t of targets) t.results.push(await runWrk(t.server, { method: 'POST', path: t.path, headers: t.headers, ...slice }));
        ctx.log(`  round ${round + 1}: ${targets.map((t) => `${t.name} ${fmtInt(t.results.at(-1)?.rps2xx)}`).join(', ')} req/s`);
      }
      [sse, json, peer, bearer] = targets.map((t) => combine(t.results));
      ctx.shared.armhookSseRps = sse?.rps2xx;
      ctx.shared.armhookJsonRps = json?.rps2xx;
      out.raw['armhook'] = { entry: ah.entry, sse, json, rounds: { sse: targets[0]?.results, json: targets[1]?.results }, rssAfter: ah.rss() };
      out.raw['webhook'] = { result: peer, rounds: targets[2]?.results, rssAfter: wh.rss() };
      out.raw['armhookBearer'] = { result: bearer, rounds: targets[3]?.results };
    } finally {
      await wh.stop();
      await ah.stop();
    }
    profiling.report(out, 'SSE + JSON');

    for (const [mode, r] of [
      ['SSE', sse],
      ['JSON', json],
    ] as const) {
      const rps = ratio(r?.rps2xx, peer?.rps2xx);
      const p99 = ratio(r?.p99, peer?.p99);
      out.rows.push({
        scenario: `1. Dispatch, ${mode} (basic auth): req/s (2xx), ${config.connections} conns, ${config.loadSeconds} s`,
        armhook: fmtInt(r?.rps2xx),
        peer: fmtInt(peer?.rps2xx),
        ratio: fmtRatio(rps),
        goal: '≥ 1.2× (floor 1.0×)',
        met: rps === null ? null : rps >= 1.2,
      });
      out.rows.push({
        scenario: `1. Dispatch, ${mode}: latency p50 / p99`,
        armhook: latencyCell(r),
        peer: latencyCell(peer),
        ratio: p99 === null ? '—' : `p99 ${fmtRatio(p99)}`,
        goal: 'p99 no worse (≤ 1.0×)',
        met: p99 === null ? null : p99 <= 1,
      });
      if (rps !== null && rps < 1.2) out.notes.push(`${mode}: ${rps >= 1 ? 'parity floor (1.0×) met, 1.2× goal not' : 'below the parity floor (1.0×)'}.`);
      if (r) out.notes.push(...wrkNotes(`armhook ${mode}`, r));
    }
    if (peer) out.notes.push(...wrkNotes('webhook', peer));
    const bearerRatio = ratio(bearer?.rps2xx, peer?.rps2xx);
    const verifyUs = await tokenVerificationMicros(fakes, token);
    out.rows.push({
      scenario: `1. Dispatch, JSON (Entra bearer token): req/s (2xx), ${config.connections} conns, ${config.loadSeconds} s`,
      armhook: fmtInt(bearer?.rps2xx),
      peer: fmtInt(peer?.rps2xx),
      ratio: fmtRatio(bearerRatio),
      goal: 'reported (token verified on every request)',
      met: null,
    });
    if (bearer) out.notes.push(...wrkNotes('armhook JSON bearer', bearer));
    out.notes.push(
      `Bearer tokens: every request's token is verified (RS256 signature with a cached key, issuer, audience, tid, exp/nbf): ${verifyUs.toFixed(0)} µs of CPU per verification (EntraVerifier.verify on one token, ${TOKEN_VERIFICATIONS} times, in the bench process); server CPU per 2xx request with a bearer token ${bearer?.serverCpuMsPerRequest?.toFixed(2) ?? '—'} ms vs ${json?.serverCpuMsPerRequest?.toFixed(2) ?? '—'} ms with basic auth (cached bcrypt).`,
    );
    const cpu = (r: WrkResult | undefined): string => {
      if (r?.serverCpuMsPerRequest === undefined) return '—';
      const parts = r.serverCpuMsPerRequestByProcess ?? [];
      const split =
        parts.length > 1
          ? ` (${parts.map((p) => `${/spawner/.test(p.command) ? 'helper' : /node/.test(p.command) ? 'node' : p.command.split(' ')[0]} ${p.ms.toFixed(2)}`).join(', ')})`
          : '';
      return `${r.serverCpuMsPerRequest.toFixed(2)} ms${split}`;
    };
    out.notes.push(
      `Server CPU per 2xx request (server's own processes, not the hook's): armhook SSE ${cpu(sse)}, JSON ${cpu(json)}, webhook ${cpu(peer)}.`,
      `Both servers run side by side and take turns (armhook SSE, armhook JSON, webhook) in ${config.loadSeconds >= 8 ? 4 : 1} round(s), after a ${config.warmupSeconds} s warm-up each; wrk ${config.wrkThreads} threads; latency percentiles are wrk's per round, combined as a request-weighted mean.`,
      `ARMHOOK_WORKERS=${config.dispatchWorkers}, ARMHOOK_RETENTION_MAX=${config.retentionMax}${config.retentionMax <= 1000 ? ' (product default): in steady state each new job prunes an old one, and that cost is included' : ''}.`,
    );
  },
};
