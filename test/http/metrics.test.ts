// /metrics (Prometheus text) and /openapi.json describe the running server.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { curl, fetchText, startServer, type TestServer } from '../helpers/server.ts';

let server: TestServer;
before(async () => {
  server = await startServer({
    scripts: {
      'ok.sh': '#!/bin/sh\n# @param who required pattern=[a-z]+ Who\necho "hi $who"\n',
      'bad.sh': '#!/bin/sh\nexit 4\n',
    },
  });
});
after(() => server.close());

test('metrics count finished jobs by hook and status, and show running/queued gauges', async () => {
  await curl(server, ['-XPOST', `${server.url}/ok?who=a`]);
  await curl(server, ['-XPOST', `${server.url}/ok?who=b`]);
  await curl(server, ['-XPOST', `${server.url}/bad`]);
  // The server runs in this process: its CPU so far, before the first scrape loads prom-client.
  const cpuBefore = process.cpuUsage();
  const res = await fetchText(server, '/metrics');
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain/);
  assert.match(res.body, /^armhook_jobs_finished_total\{hook="ok",status="succeeded"\} 2$/m);
  assert.match(res.body, /^armhook_jobs_finished_total\{hook="bad",status="failed"\} 1$/m);
  assert.match(res.body, /^armhook_jobs_running 0$/m);
  assert.match(res.body, /^armhook_jobs_queued 0$/m);
  assert.match(res.body, /^armhook_job_duration_seconds_count\{hook="ok"\} 2$/m);
  assert.match(res.body, /^armhook_process_resident_memory_bytes \d+/m);
  // Process CPU covers the process's life, not only the time since the first scrape.
  const cpuSeconds = Number(/^armhook_process_cpu_seconds_total ([\d.e+-]+)$/m.exec(res.body)?.[1]);
  assert.ok(cpuSeconds >= (cpuBefore.user + cpuBefore.system) / 1e6, `${cpuSeconds} s reported, ${(cpuBefore.user + cpuBefore.system) / 1e6} s used before the scrape`);
});

test('openapi.json lists hooks with their declared parameters', async () => {
  const res = await fetchText(server, '/openapi.json');
  assert.equal(res.status, 200);
  const doc = res.json();
  assert.equal(doc.openapi, '3.1.0');
  const op = doc.paths['/ok'].post;
  assert.deepEqual(op.parameters.filter((p: { in: string }) => p.in === 'query').map((p: { name: string }) => p.name), ['who']);
  assert.equal(op.parameters[0].required, true);
  assert.equal(op.parameters[0].schema.pattern, '^(?:[a-z]+)$');
  assert.ok(doc.paths['/jobs/{id}'].delete);
});

test('metrics need authentication when users are configured; healthz does not', async () => {
  const { setPassword } = await import('../../server/auth/index.ts');
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const file = join(await mkdtemp(join(tmpdir(), 'armhook-htpasswd-')), 'htpasswd');
  await setPassword(file, 'ops', 'correct horse', { cost: 4 });
  const guarded = await startServer({ config: { htpasswd: file } });
  try {
    assert.equal((await fetchText(guarded, '/metrics')).status, 401);
    assert.equal((await fetchText(guarded, '/metrics', { auth: 'ops:correct horse' })).status, 200);
    assert.equal((await fetchText(guarded, '/healthz')).status, 200);
  } finally {
    await guarded.close();
  }
});
