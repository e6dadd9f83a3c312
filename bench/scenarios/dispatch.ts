/**
 * 1. Dispatch: the echo hook (one line), 16 connections, armhook in SSE and JSON mode and
 * webhook, all over TLS; only 2xx responses count.
 */
import { join } from 'node:path';
import type { Scenario } from '../lib/context.ts';
import { newestProfile, profileEnv, topSelf } from '../lib/profile.ts';
import { fetchJson, fetchText } from '../lib/http.ts';
import { fmtInt, fmtMs, fmtRatio } from '../lib/report.ts';
import { startArmhook, startWebhook, type RunningServer } from '../lib/servers.ts';
import { ratio } from '../lib/stats.ts';
import { runWrk, type WrkResult } from '../lib/wrk.ts';

const SSE = { accept: 'text/event-stream' };
const JSON_MODE = { accept: 'application/json' };

export async function measureLoad(
  server: RunningServer,
  o: { method: 'GET' | 'POST'; path: string; headers: Record<string, string>; seconds: number; warmupSeconds: number; connections: number; threads: number; dir: string },
): Promise<WrkResult> {
  await runWrk(server, { ...o, seconds: o.warmupSeconds });
  return runWrk(server, o);
}

function latencyCell(r: WrkResult | undefined): string {
  return r ? `${fmtMs(r.p50)} / ${fmtMs(r.p99)}` : '—';
}

export function wrkNotes(label: string, r: WrkResult): string[] {
  const notes: string[] = [];
  if (r.other > 0) notes.push(`${label}: ${r.other} non-2xx responses (not counted).`);
  if (r.informational > 0) notes.push(`${label}: **${r.informational} 1xx responses** — wrk takes a 1xx for the final response, so these figures are not valid.`);
  const e = r.errors;
  if (e.connect + e.read + e.write + e.timeout > 0) notes.push(`${label}: socket errors connect ${e.connect}, read ${e.read}, write ${e.write}, timeout ${e.timeout}.`);
  return notes;
}

export const dispatch: Scenario = {
  id: '1',
  title: 'Dispatch',
  budgetMs: (c) => (3 * (c.loadSeconds + c.warmupSeconds) + 90) * 1000,
  async run(ctx, out) {
    const { config, fx, fakes } = ctx;
    const load = { seconds: config.loadSeconds, warmupSeconds: config.warmupSeconds, connections: config.connections, threads: config.wrkThreads, dir: fx.tmp };
    let sse: WrkResult | undefined;
    let json: WrkResult | undefined;
    let peer: WrkResult | undefined;

    const profileDir = join(config.benchDir, 'profiles');
    const profileSince = Date.now();
    const ah = await startArmhook(config, fx, 'dispatch', {
      workers: config.dispatchWorkers,
      fakes,
      ...(config.profile ? { env: profileEnv(profileDir) } : {}),
    });
    try {
      const probe = await fetchText(ah.target, '/echo', { method: 'POST', headers: SSE });
      if (probe.status !== 200 || !probe.body.includes('\ndata: hello\n') || !/event: done\ndata: [^\n]*"status":"succeeded"/.test(probe.body)) {
        throw new Error(`armhook SSE echo did not answer as expected: HTTP ${probe.status}\n${probe.body.slice(0, 400)}`);
      }
      const probeJson = await fetchJson<{ output?: string; status?: string }>(ah.target, '/echo', { method: 'POST', headers: JSON_MODE });
      if (probeJson.status !== 200 || probeJson.json.output !== 'hello\n') throw new Error(`armhook JSON echo: HTTP ${probeJson.status} ${JSON.stringify(probeJson.json).slice(0, 300)}`);
      ctx.log(`armhook SSE: ${config.connections} connections, ${config.loadSeconds} s`);
      sse = await measureLoad(ah, { method: 'POST', path: '/echo', headers: SSE, ...load });
      ctx.shared.armhookSseRps = sse.rps2xx;
      ctx.log(`  ${fmtInt(sse.rps2xx)} req/s; armhook JSON`);
      json = await measureLoad(ah, { method: 'POST', path: '/echo', headers: JSON_MODE, ...load });
      ctx.shared.armhookJsonRps = json.rps2xx;
      ctx.log(`  ${fmtInt(json.rps2xx)} req/s`);
      out.raw['armhook'] = { entry: ah.entry, sse, json, rssAfter: ah.rss() };
    } finally {
      await ah.stop();
    }
    if (config.profile) {
      const file = newestProfile(profileDir, profileSince);
      if (file) {
        const top = topSelf(file, config.root);
        out.raw['profile'] = { file, topSelf: top };
        out.notes.push(`**Profiled run** (BENCH_PROFILE=1: armhook under --cpu-prof, figures lower than usual): ${file}; top self time over SSE + JSON: ${top.slice(0, 8).join('; ')}.`);
      } else {
        out.notes.push(`BENCH_PROFILE=1 but no .cpuprofile appeared in ${profileDir} (armhook did not exit normally?).`);
      }
    }

    const wh = await startWebhook(fx, 'dispatch');
    try {
      const probe = await fetchText(wh.target, '/hooks/echo', { method: 'POST' });
      if (probe.status !== 200 || probe.body !== 'hello\n') throw new Error(`webhook echo: HTTP ${probe.status} ${JSON.stringify(probe.body)}`);
      ctx.log('webhook');
      peer = await measureLoad(wh, { method: 'POST', path: '/hooks/echo', headers: {}, ...load });
      ctx.log(`  ${fmtInt(peer.rps2xx)} req/s`);
      out.raw['webhook'] = { result: peer, rssAfter: wh.rss() };
    } finally {
      await wh.stop();
    }

    for (const [mode, r] of [['SSE', sse], ['JSON', json]] as const) {
      const rps = ratio(r?.rps2xx, peer?.rps2xx);
      const p99 = ratio(r?.p99, peer?.p99);
      out.rows.push({
        scenario: `1. Dispatch, ${mode}: req/s (2xx), ${config.connections} conns, ${config.loadSeconds} s`,
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
    const cpu = (r: WrkResult | undefined): string => {
      if (r?.serverCpuMsPerRequest === undefined) return '—';
      const parts = r.serverCpuMsPerRequestByProcess ?? [];
      const split = parts.length > 1 ? ` (${parts.map((p) => `${/spawner/.test(p.command) ? 'helper' : /node/.test(p.command) ? 'node' : p.command.split(' ')[0]} ${p.ms.toFixed(2)}`).join(', ')})` : '';
      return `${r.serverCpuMsPerRequest.toFixed(2)} ms${split}`;
    };
    out.notes.push(
      `Server CPU per 2xx request (server's own processes, not the hook's): armhook SSE ${cpu(sse)}, JSON ${cpu(json)}, webhook ${cpu(peer)}.`,
      `Each measured run follows a ${config.warmupSeconds} s warm-up; wrk ${config.wrkThreads} threads; latency percentiles are wrk's, over all completed responses.`,
      `ARMHOOK_WORKERS=${config.dispatchWorkers}, ARMHOOK_RETENTION_MAX=${config.retentionMax}${config.retentionMax <= 1000 ? ' (product default): in steady state each new job prunes an old one, and that cost is included' : ''}.`,
    );
  },
};
