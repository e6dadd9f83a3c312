// Dispatch A/B of armhook checkouts: the same echo hook, fixtures, settings and wrk load as
// scenario 1, against several armhook trees and webhook, all running at once and taking turns in
// short windows, so drift on a shared machine falls on every target alike. Besides req/s and the
// ratio to webhook it reports the machine's idle share and CPU per request (/proc/stat): a store
// that makes requests wait (not work) shows as idle time, not as server CPU.
//
//   node bench/micro/ab.ts [name=]<checkout> [[name=]<checkout> ...]
//
// Each checkout needs its own `npm ci`; `npm run build` in it makes it run dist/ (the report says
// which). Knobs: AB_ROUNDS (4), AB_SECONDS per window (8), AB_MODE sse|json (sse), AB_AUTH=0 for
// anonymous requests (default: basic auth, as scenario 1), AB_CONNECTIONS (16).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { loadBenchConfig } from '../lib/config.ts';
import { closeAgents } from '../lib/http.ts';
import { benchBasicAuth, makeFixtures, startArmhook, startFakes, startWebhook, type RunningServer } from '../lib/servers.ts';
import { runWrk, type WrkResult } from '../lib/wrk.ts';

interface Window {
  rps: number;
  serverCpuMs: number;
  p50: number;
  idleShare: number;
  machineCpuMs: number;
}

const rounds = Number(process.env['AB_ROUNDS'] ?? 4);
const seconds = Number(process.env['AB_SECONDS'] ?? 8);
const connections = Number(process.env['AB_CONNECTIONS'] ?? 16);
const json = process.env['AB_MODE'] === 'json';
const auth = process.env['AB_AUTH'] !== '0';

/** The machine's CPU time counters (clock ticks): user, nice, system, idle, iowait, … */
function machineTicks(): number[] {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  return line.trim().split(/\s+/).slice(1).map(Number);
}

async function measure(server: RunningServer, headers: Record<string, string>, dir: string, windowSeconds: number): Promise<Window> {
  const before = machineTicks();
  const r: WrkResult = await runWrk(server, { method: 'POST', path: server.echoPath, headers, seconds: windowSeconds, connections, threads: 2, dir });
  const spent = machineTicks().map((ticks, i) => ticks - (before[i] ?? 0));
  const total = spent.reduce((a, b) => a + b, 0);
  const idle = (spent[3] ?? 0) + (spent[4] ?? 0);
  const tickMs = 1000 / 100; // USER_HZ is 100 on Linux
  return {
    rps: r.rps2xx,
    serverCpuMs: r.serverCpuMsPerRequest ?? 0,
    p50: r.p50,
    idleShare: total > 0 ? idle / total : 0,
    machineCpuMs: r.ok2xx > 0 ? ((total - idle) * tickMs) / r.ok2xx : 0,
  };
}

function mean(windows: Window[], pick: (w: Window) => number): number {
  return windows.length > 0 ? windows.reduce((sum, w) => sum + pick(w), 0) / windows.length : 0;
}

function report(servers: RunningServer[], results: Map<string, Window[]>): void {
  const webhookRps = mean(results.get('webhook') ?? [], (w) => w.rps);
  console.log(`\n${json ? 'JSON' : 'SSE'}, ${auth ? 'basic auth' : 'anonymous'}, ${connections} connections, ${rounds} rounds of ${seconds} s`);
  console.log('target        entry     req/s   ×webhook  server ms/req  p50 ms  machine idle  machine ms/req');
  for (const server of servers) {
    const windows = results.get(server.name) ?? [];
    const rps = mean(windows, (w) => w.rps);
    console.log(
      [
        server.name.padEnd(13),
        (server.kind === 'webhook' ? 'binary' : server.entry).padEnd(8),
        rps.toFixed(0).padStart(6),
        (rps / webhookRps).toFixed(3).padStart(10),
        mean(windows, (w) => w.serverCpuMs)
          .toFixed(3)
          .padStart(14),
        mean(windows, (w) => w.p50)
          .toFixed(2)
          .padStart(7),
        `${(100 * mean(windows, (w) => w.idleShare)).toFixed(1)} %`.padStart(13),
        mean(windows, (w) => w.machineCpuMs)
          .toFixed(3)
          .padStart(15),
      ].join(' '),
    );
  }
}

async function main(): Promise<void> {
  const trees = process.argv.slice(2).map((arg) => {
    const [name, path] = arg.includes('=') ? (arg.split('=', 2) as [string, string]) : [basename(resolve(arg)), arg];
    return { name, root: resolve(path) };
  });
  if (trees.length === 0) throw new Error('usage: node bench/micro/ab.ts [name=]<checkout> [[name=]<checkout> ...]');
  const config = loadBenchConfig();
  const tmp = mkdtempSync(join(tmpdir(), 'armhook-ab-'));
  const fx = await makeFixtures(tmp);
  const fakes = await startFakes(tmp);
  const servers: RunningServer[] = [];
  try {
    for (const { name, root } of trees)
      servers.push(
        await startArmhook({ ...config, root }, fx, name, { workers: config.dispatchWorkers, fakes, env: auth ? { ARMHOOK_HTPASSWD: fx.htpasswd } : {} }),
      );
    servers.push(await startWebhook(fx, 'webhook'));
    const armhookHeaders = { accept: json ? 'application/json' : 'text/event-stream', ...(auth ? { authorization: benchBasicAuth() } : {}) };
    const headersOf = (s: RunningServer): Record<string, string> => (s.kind === 'webhook' ? {} : armhookHeaders);
    for (const server of servers) await measure(server, headersOf(server), tmp, 2); // warm-up
    const results = new Map<string, Window[]>(servers.map((s) => [s.name, []]));
    for (let round = 0; round < rounds; round++) {
      // Alternate the order so no target always runs right after the same one.
      for (const server of round % 2 === 0 ? servers : [...servers].reverse())
        results.get(server.name)?.push(await measure(server, headersOf(server), tmp, seconds));
      console.log(`round ${round + 1}: ${servers.map((s) => `${s.name} ${results.get(s.name)?.at(-1)?.rps.toFixed(0)}/s`).join(', ')}`);
    }
    report(servers, results);
  } finally {
    for (const server of servers) await server.stop();
    await fakes.close();
    closeAgents();
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
