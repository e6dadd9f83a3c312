/**
 * Hostile loads against a real armhook (bin/armhook serve, dist/ when built), loopback only,
 * bounded in count and time:
 *
 *   node bench/micro/hardening.ts guess [seconds] [addresses]
 *     Wrong passwords for a bcrypt cost-10 user, 64 connections at once, from `addresses` source
 *     addresses on 127.0.0.0/8 (default 8; 0 = a new address for every guess, as many addresses
 *     would send it, past any per-address limit), for `seconds` (default 10). Meanwhile GET
 *     /healthz every 20 ms and a request with cached credentials every 100 ms from other
 *     addresses: their p50/p99/max, and what the guesses got.
 *   node bench/micro/hardening.ts timing [rounds]
 *     Unknown user vs known user with a wrong password, one server per hash type (bcrypt cost 10,
 *     bcrypt cost 12, apr1, SHA-1), `rounds` of each (default 40), alternating, each from a new
 *     source address: medians and their ratio.
 *   node bench/micro/hardening.ts storm [attempts] [addresses]
 *     `attempts` TLS connection attempts (default 20,000) from `addresses` (default 8), at most 500 in
 *     flight, each held open once accepted; a /healthz probe from another address during the
 *     storm; RSS before, at the peak and after the connections are gone.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { hashPassword } from '../../server/auth/passwd.ts';
import { loadBenchConfig } from '../lib/config.ts';
import { fetchText } from '../lib/http.ts';
import { delay, statusBytes, stopAll } from '../lib/procs.ts';
import { BENCH_USER, makeFixtures, startArmhook, startFakes, type Fixtures, type RunningServer } from '../lib/servers.ts';

const config = loadBenchConfig();
const MiB = 1024 * 1024;

interface Timed {
  status: number;
  ms: number;
}

/** One request on a fresh connection from `localAddress`; status 0 on a network error. */
function timedRequest(server: RunningServer, path: string, localAddress: string, auth?: string, agent?: Agent): Promise<Timed> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = httpsRequest(
      new URL(path, server.target.base),
      {
        ca: server.target.ca,
        localAddress,
        ...(agent ? { agent } : { agent: false }),
        headers: auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {},
        timeout: 30_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      },
    );
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started }));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const fmt = (ms: number): string => `${ms.toFixed(1)} ms`;
const summary = (xs: number[]): string => `n=${xs.length} p50 ${fmt(percentile(xs, 50))} p99 ${fmt(percentile(xs, 99))} max ${fmt(Math.max(...xs))}`;

function count(statuses: number[]): string {
  const by = new Map<number, number>();
  for (const s of statuses) by.set(s, (by.get(s) ?? 0) + 1);
  return [...by]
    .sort((a, b) => a[0] - b[0])
    .map(([s, n]) => `${s === 0 ? 'error' : s}: ${n}`)
    .join(', ');
}

/** BENCH_SERVER_ENV='NAME=value …': extra environment for the server (allocator experiments). */
function experimentEnv(): Record<string, string> {
  const pairs = (process.env['BENCH_SERVER_ENV'] ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map((p) => p.split('=', 2) as [string, string]);
  return Object.fromEntries(pairs);
}

async function withServer<T>(fx: Fixtures, name: string, env: Record<string, string>, fn: (server: RunningServer) => Promise<T>): Promise<T> {
  const fakes = await startFakes(fx.tmp);
  const server = await startArmhook(config, fx, name, { workers: 2, fakes, env: { ...experimentEnv(), ...env } });
  try {
    return await fn(server);
  } finally {
    await server.stop();
    await fakes.close();
  }
}

async function guess(fx: Fixtures, seconds: number, addresses: number): Promise<void> {
  await withServer(fx, 'guess', { ARMHOOK_HTPASSWD: fx.htpasswd }, async (server) => {
    const cachedAgent = new Agent({ keepAlive: true, ca: server.target.ca, localAddress: '127.0.2.2' });
    const good = `${BENCH_USER.name}:${BENCH_USER.password}`;
    const first = await timedRequest(server, '/hooks', '127.0.2.2', good, cachedAgent);
    if (first.status !== 200) throw new Error(`the bench user does not authenticate (${first.status})`);
    const healthAgent = new Agent({ keepAlive: true, ca: server.target.ca, localAddress: '127.0.2.1' });
    const idle: number[] = [];
    for (let i = 0; i < 100; i++) {
      idle.push((await timedRequest(server, '/healthz', '127.0.2.1', undefined, healthAgent)).ms);
      await delay(20);
    }
    const until = performance.now() + seconds * 1000;
    const guesses: number[] = [];
    let serial = 0;
    const sourceOf = (): string => `127.3.${Math.floor(serial / 250) % 250}.${1 + (serial % 250)}`;
    // With a fixed set of addresses each of the 64 guessers keeps its connection (keep-alive);
    // with a new address per guess every guess is a new connection.
    const guesser = async (index: number): Promise<void> => {
      const agent =
        addresses > 0 ? new Agent({ keepAlive: true, maxSockets: 1, ca: server.target.ca, localAddress: `127.0.1.${1 + (index % addresses)}` }) : undefined;
      while (performance.now() < until) {
        const source = agent?.options.localAddress ?? sourceOf();
        guesses.push((await timedRequest(server, '/hooks', source, `${BENCH_USER.name}:wrong-${serial++}`, agent)).status);
      }
      agent?.destroy();
    };
    const health: number[] = [];
    const cached: number[] = [];
    const prober = async (path: string, every: number, into: number[], agent: Agent, auth?: string): Promise<void> => {
      while (performance.now() < until) {
        const r = await timedRequest(server, path, agent.options.localAddress ?? '127.0.2.1', auth, agent);
        if (r.status !== 200) throw new Error(`${path} answered ${r.status} during the load`);
        into.push(r.ms);
        await delay(every);
      }
    };
    await Promise.all([
      ...Array.from({ length: 64 }, (_, i) => guesser(i)),
      prober('/healthz', 20, health, healthAgent),
      prober('/hooks', 100, cached, cachedAgent, good),
    ]);
    healthAgent.destroy();
    cachedAgent.destroy();
    console.log(
      `guessing load: ${seconds} s, 64 at once, ${addresses > 0 ? `${addresses} source addresses, keep-alive connections` : 'a new connection from a new source address per guess'}; guesses answered ${count(guesses)} (${(guesses.length / seconds).toFixed(0)}/s)`,
    );
    console.log(`GET /healthz (keep-alive, every 20 ms): before the load ${summary(idle)}; during it ${summary(health)}`);
    console.log(`GET /hooks with cached credentials (keep-alive, every 100 ms): ${summary(cached)}`);
  });
}

async function timing(fx: Fixtures, rounds: number): Promise<void> {
  const kinds: Array<[string, () => Promise<string>]> = [
    ['bcrypt cost 10', () => hashPassword('right-password', 10)],
    ['bcrypt cost 12', () => hashPassword('right-password', 12)],
    ['apr1', async () => '$apr1$Ij1w1c2q$3zmSSVXNG/GhIrMzPhKJ8/'],
    ['SHA-1', async () => '{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g='],
  ];
  let source = 0;
  const next = (): string => `127.4.${Math.floor(source / 250) % 250}.${1 + (source++ % 250)}`;
  for (const [label, make] of kinds) {
    const file = join(fx.tmp, `htpasswd-${label.replaceAll(' ', '-')}`);
    writeFileSync(file, `known:${await make()}\n`);
    await withServer(fx, `timing-${label}`, { ARMHOOK_HTPASSWD: file }, async (server) => {
      const unknown: number[] = [];
      const wrong: number[] = [];
      for (let i = 0; i < 3; i++) await timedRequest(server, '/hooks', next(), `warm${i}:x`); // start the verifier thread
      for (let i = 0; i < rounds; i++) {
        const u = await timedRequest(server, '/hooks', next(), `nobody-${i}:guess-${i}`);
        const w = await timedRequest(server, '/hooks', next(), `known:guess-${i}`);
        if (u.status !== 401 || w.status !== 401) throw new Error(`expected 401s, got ${u.status} and ${w.status}`);
        unknown.push(u.ms);
        wrong.push(w.ms);
      }
      const mu = percentile(unknown, 50);
      const mw = percentile(wrong, 50);
      console.log(
        `${label.padEnd(15)} unknown user median ${fmt(mu)}, wrong password median ${fmt(mw)}: unknown/known ${(mu / mw).toFixed(2)} (${rounds} each, fresh TLS connection per request)`,
      );
    });
  }
}

/** V8's heap and Node's external memory from /metrics (MiB), to tell the JS heap from native memory. */
async function heapOf(server: RunningServer): Promise<string> {
  const text = (await fetchText(server.target, '/metrics', { fresh: true })).body;
  const value = (name: string): string => (Number(new RegExp(`^armhook_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / MiB).toFixed(1);
  return `V8 heap ${value('nodejs_heap_size_used_bytes')} used / ${value('nodejs_heap_size_total_bytes')} total, external ${value('nodejs_external_memory_bytes')} MiB`;
}

function rssMiB(pid: number): number {
  return statusBytes(pid) / MiB;
}

/** Open file descriptors of a process that are sockets. */
function socketsOf(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** ms for curl to get a 200 from `url` on a new connection from `address`; Infinity otherwise (5 s cap). */
function curlProbe(url: string, caFile: string, address: string): Promise<number> {
  return new Promise((resolve) => {
    execFile(
      'curl',
      ['-s', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', '--max-time', '5', '--interface', address, '--cacert', caFile, url],
      (_err, stdout) => {
        const [code, seconds] = String(stdout).trim().split(' ');
        resolve(code === '200' ? Number(seconds) * 1000 : Infinity);
      },
    );
  });
}

async function storm(fx: Fixtures, attempts: number, addresses: number): Promise<void> {
  await withServer(fx, 'storm', {}, async (server) => {
    const pid = server.proc.pid;
    for (let i = 0; i < 20; i++) await timedRequest(server, '/healthz', '127.0.5.1');
    await delay(2000);
    const before = rssMiB(pid);
    const heapBefore = await heapOf(server);
    const held: TLSSocket[] = [];
    let accepted = 0;
    let refused = 0;
    let peakSockets = 0;
    let started = 0;
    const attempt = (): Promise<void> =>
      new Promise((resolve) => {
        const n = started++;
        let ok = false;
        const socket = connect(
          {
            host: '127.0.0.1',
            port: Number(new URL(server.target.base).port),
            ca: server.target.ca,
            servername: 'localhost',
            ...{ localAddress: `127.0.6.${1 + (n % addresses)}` },
          },
          () => {
            ok = true;
            accepted++;
            held.push(socket);
            resolve();
          },
        );
        socket.on('error', () => undefined);
        socket.once('close', () => {
          if (!ok) refused++;
          resolve();
        });
      });
    const t0 = performance.now();
    const probes: number[] = [];
    let storming = true;
    // The probe is curl, a process of its own: this process's event loop is busy with the storm.
    const caFile = join(fx.tmp, 'probe-ca.pem');
    writeFileSync(caFile, server.target.ca);
    const probe = (async () => {
      while (storming) {
        const r = await curlProbe(`${server.target.base}/healthz`, caFile, '127.0.5.2');
        probes.push(r);
        peakSockets = Math.max(peakSockets, socketsOf(pid));
        await delay(200);
      }
    })();
    const inFlight = new Set<Promise<void>>();
    let peakRss = before;
    while (started < attempts) {
      const p = attempt();
      inFlight.add(p);
      void p.then(() => inFlight.delete(p));
      if (inFlight.size >= 500) await Promise.race(inFlight);
      if (started % 1000 === 0) peakRss = Math.max(peakRss, rssMiB(pid));
    }
    await Promise.all(inFlight);
    const stormMs = performance.now() - t0;
    peakRss = Math.max(peakRss, rssMiB(pid));
    const heldAtEnd = held.filter((s) => !s.destroyed).length;
    storming = false;
    await probe;
    for (const s of held) s.destroy();
    // The server sees the closes; then give the allocator a moment.
    for (let i = 0; i < 100 && socketsOf(pid) > 20; i++) await delay(100);
    const socketsAfter = socketsOf(pid);
    // Experiment: BENCH_GC_SIGNAL=SIGUSR2 with BENCH_NODE_OPTIONS=--heapsnapshot-signal=SIGUSR2 forces a full GC here.
    if (process.env['BENCH_GC_SIGNAL']) process.kill(pid, process.env['BENCH_GC_SIGNAL']);
    const settled: string[] = [];
    for (const wait of [5, 10, 15]) {
      await delay(5000);
      settled.push(`${rssMiB(pid).toFixed(1)} MiB after ${wait} s`);
    }
    const after = rssMiB(pid);
    const heapAfter = await heapOf(server);
    console.log(
      `connection storm: ${attempts} TLS attempts from ${addresses} addresses in ${(stormMs / 1000).toFixed(1)} s: ${accepted} completed the handshake, ${refused} closed by the server; ${heldAtEnd} still open at the end; server sockets at most ${peakSockets}`,
    );
    console.log(
      `/healthz by curl on a new connection from another address during the storm: ${summary(probes.filter(Number.isFinite))}, failed or over 5 s: ${probes.filter((p) => !Number.isFinite(p)).length}`,
    );
    console.log(
      `RSS: before ${before.toFixed(1)} MiB, peak ${peakRss.toFixed(1)} MiB; once the server's sockets are closed (${socketsAfter} left): ${settled.join(', ')} (${(after - before).toFixed(1)} MiB above the start)${process.env['BENCH_SERVER_ENV'] ? `; server env ${process.env['BENCH_SERVER_ENV']}` : ''}`,
    );
    console.log(`before: ${heapBefore}; after: ${heapAfter}`);
  });
}

const [mode = 'guess', arg1, arg2] = process.argv.slice(2);
const tmp = mkdtempSync(join(tmpdir(), 'armhook-hardening-bench-'));
const watchdog = setTimeout(() => {
  console.error('hardening bench: over its 5-minute budget; stopping');
  void stopAll().finally(() => process.exit(1));
}, 5 * 60_000);
try {
  const fx = await makeFixtures(tmp);
  if (mode === 'guess') await guess(fx, Number(arg1 ?? 10), Number(arg2 ?? 8));
  else if (mode === 'timing') await timing(fx, Number(arg1 ?? 40));
  else if (mode === 'storm') await storm(fx, Number(arg1 ?? 20_000), Number(arg2 ?? 8));
  else throw new Error(`unknown mode ${mode}: guess, timing or storm`);
} finally {
  clearTimeout(watchdog);
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
}
