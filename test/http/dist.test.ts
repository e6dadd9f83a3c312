// The bundled server (dist/main.js: what `npm start`, bin/armhook and systemd run), end to end
// over a real socket with curl. The other tests run the TypeScript source; this one catches what
// only the bundle gets wrong (CommonJS packages loaded on demand, chunks split at lazy imports).
// `npm test` builds dist/ first.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DIST_CLI, markerLine, removeRoot, startServerProcess, type ServerProcess } from '../helpers/process.ts';
import { curl, parseSse } from '../helpers/server.ts';

const MAIN = join(import.meta.dirname, '..', '..');

/** The newest modification time under a directory. */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

let server: ServerProcess;

before(async () => {
  let built = 0;
  try {
    built = statSync(join(MAIN, 'dist', '.built')).mtimeMs;
  } catch {
    // not built
  }
  assert.ok(built > 0 && built >= newest(join(MAIN, 'server')), `${DIST_CLI} is missing or older than server/: run npm run build (npm test does)`);
  server = await startServerProcess({
    dist: true,
    devCert: true,
    scripts: { 'hello.sh': `#!/bin/sh\n# @param name default=world\n${markerLine('hello-ran')}\necho "hello $name"\n` },
  });
});

after(async () => {
  server.signal('SIGTERM');
  const exit = await server.exited;
  await removeRoot(server.root);
  assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM: drained and exited 0');
});

test('dist/: starts without a certificate (generates the dev one), runs a hook as SSE, and exits 0 on SIGTERM', async () => {
  const health = await curl(server, ['-sS', `${server.url}/healthz`]);
  assert.equal(health.stdout, '{"status":"ok"}');
  const run = await curl(server, ['-sS', '-XPOST', `${server.url}/hello?name=bundle`]);
  const { events } = parseSse(run.stdout);
  assert.ok(
    events.some((e) => e.event === 'message' && e.data === 'hello bundle'),
    run.stdout,
  );
  assert.match(events.at(-1)?.data ?? '', /"status":"succeeded"/);
  assert.ok(
    server.logs().some((l) => l.component === 'tls'),
    'the dev certificate was generated and logged',
  );
});

test('dist/: /metrics (prom-client, loaded on the first scrape), /hooks with the typed handlers (loaded on first use), /openapi.json', async () => {
  const metrics = await curl(server, ['-sS', '-w', '\n%{http_code}', `${server.url}/metrics`]);
  assert.match(metrics.stdout, /\n200$/);
  assert.match(metrics.stdout, /^armhook_jobs_running \d+$/m);
  const hooks = JSON.parse((await curl(server, ['-sS', `${server.url}/hooks`])).stdout) as { hooks: Array<{ path: string }> } | Array<{ path: string }>;
  const paths = (Array.isArray(hooks) ? hooks : hooks.hooks).map((h) => h.path);
  assert.ok(
    paths.some((p) => p.includes('hello')),
    paths.join(', '),
  );
  assert.ok(
    paths.some((p) => p.includes('azure/')),
    `typed handlers listed: ${paths.join(', ')}`,
  );
  const openapi = JSON.parse((await curl(server, ['-sS', `${server.url}/openapi.json`])).stdout) as { openapi: string; paths: Record<string, unknown> };
  assert.match(openapi.openapi, /^3\./);
  assert.ok(Object.keys(openapi.paths).length > 2);
});

test('dist/: `armhook call` runs against the server from a chunk of its own that loads none of the server (no fastify)', async () => {
  const main = readFileSync(DIST_CLI, 'utf8');
  const chunk = /import\("\.\/(commands-[A-Z0-9]+\.js)"\)/.exec(main)?.[1];
  assert.ok(chunk, 'main.js imports the client commands lazily');
  const source = readFileSync(join(MAIN, 'dist', chunk), 'utf8');
  assert.deepEqual(source.match(/from ["']\.\/[^"']+["']|import\(["']\.\/[^"']+["']\)/g), null, 'the client chunk imports no other chunk');
  assert.doesNotMatch(source, /fastify/);
  const call = spawnSync(process.execPath, [DIST_CLI, 'call', `${server.url}/hello`, 'name=cli', '--cacert', server.caPath], { encoding: 'utf8' });
  assert.equal(call.status, 0, call.stderr);
  assert.equal(call.stdout, 'hello cli\n');
});
