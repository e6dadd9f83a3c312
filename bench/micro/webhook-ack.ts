/**
 * How fast a signed GitHub push is acknowledged: a real armhook (built in this process, as the
 * tests build it) with a `github` signature on the sample receiver scripts/ci/github.sh
 * (`# @respond async`), and N push deliveries (JSON, 20 commits, ~12 KB) sent one after the other
 * over one TLS connection each. Reports the time from sending the request to the 202 (p50, p99,
 * max, after 10 warm-up deliveries); GitHub gives up after 10 s. Every other delivery repeats the previous delivery id, so
 * half the answers come from the idempotency key (the job it already started).
 *
 *   node bench/micro/webhook-ack.ts [deliveries]     (default 200)
 */
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { githubDelivery, githubPush } from '../../test/fakes/senders.ts';
import { pino } from 'pino';
import { buildApp } from '../../server/app.ts';
import { loadConfig } from '../../server/config/index.ts';
import { writeTestPki } from '../../test/helpers/certs.ts';
import { fetchText } from '../../test/helpers/server.ts';

const N = Number(process.argv[2] ?? 200);
const WARMUP = 10;
const SECRET = 'bench-github-secret';

const dir = await mkdtemp(join(tmpdir(), 'armhook-ack-'));
const secretFile = join(dir, 'github.secret');
await writeFile(secretFile, SECRET);
await chmod(secretFile, 0o600);
const access = join(dir, 'access.json');
await writeFile(access, JSON.stringify({ signatures: { github: { scheme: 'github', secretFile, hooks: ['ci/github'] } } }));
const scriptsDir = join(dir, 'scripts');
await mkdir(join(scriptsDir, 'ci'), { recursive: true });
await writeFile(join(scriptsDir, 'ci', 'github.sh'), readFileSync(join(import.meta.dirname, '..', '..', 'scripts', 'ci', 'github.sh')), { mode: 0o755 });
const pki = await writeTestPki(dir);
const config = loadConfig({
  env: {},
  cwd: dir,
  overrides: {
    listen: { host: '127.0.0.1', port: 0 },
    scriptsDir,
    dataDir: join(dir, 'data'),
    tlsCert: pki.certPath,
    tlsKey: pki.keyPath,
    access,
    workers: 4,
    queue: 1000,
    imdsEndpoint: 'http://127.0.0.1:9',
  },
});
const armhook = await buildApp(config, { log: pino({ level: 'warn' }) });
const url = await armhook.listen();
const server = { url: url.replace('127.0.0.1', 'localhost'), ca: pki.caCert };
try {
  const first = new Map<string, number[]>([
    ['new', []],
    ['repeat', []],
  ]);
  let previous: ReturnType<typeof githubDelivery> | undefined;
  for (let i = 0; i < N; i++) {
    const repeat = i % 2 === 1 && previous !== undefined;
    const delivery = repeat && previous ? previous : githubDelivery('push', githubPush(20), SECRET);
    const start = performance.now();
    const res = await fetchText(server, '/ci/github', { method: 'POST', body: delivery.body, headers: delivery.headers });
    const ms = performance.now() - start;
    if (res.status !== 202) throw new Error(`delivery ${i}: HTTP ${res.status} ${res.body}`);
    if (i >= WARMUP) first.get(repeat ? 'repeat' : 'new')?.push(ms);
    previous = delivery;
  }
  const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;
  for (const [kind, xs] of first) {
    console.log(
      `${kind.padEnd(6)} deliveries ${xs.length}: 202 after p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`,
    );
  }
} finally {
  await armhook.close();
  await rm(dir, { recursive: true, force: true });
}
