// /metrics (Prometheus text) and /openapi.json describe the running server.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { curl, fetchText, startServer, type TestServer } from '../helpers/server.ts';

/** `promtool check metrics` (Debian's prometheus package) on a scrape: its findings, or '' when clean. */
function promtool(text: string): string {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(result.error, undefined, 'promtool must be installed (test/ensure-tools.sh)');
  return result.status === 0 ? '' : `exit ${result.status}: ${result.stdout}${result.stderr}`;
}

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

test('the first scrape passes promtool: no NaN, no sentinels, no gauges named like counters', async () => {
  const fresh = await startServer();
  try {
    const res = await fetchText(fresh, '/metrics');
    assert.equal(res.status, 200);
    assert.equal(promtool(res.body), '');
    assert.doesNotMatch(res.body, /\b(NaN|Nan|\+?Inf)$|9223372036/im);
    assert.match(res.body, /^# TYPE armhook_job_duration_seconds histogram$/m);
    assert.match(res.body, /^# TYPE armhook_http_request_duration_seconds histogram$/m);
    assert.match(res.body, /^armhook_tls_certificate_expiry_seconds \d+/m);
    assert.match(res.body, /^armhook_jobs_queued 0$/m);
    // A second scrape right after the first (nothing sampled in between) is clean too.
    assert.equal(promtool((await fetchText(fresh, '/metrics')).body), '');
  } finally {
    await fresh.close();
  }
});

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
  assert.match(res.body, /^armhook_job_duration_seconds_bucket\{hook="ok",le="\+Inf"\} 2$/m);
  assert.match(res.body, /^armhook_http_request_duration_seconds_count\{method="POST",code="200"\} 3$/m);
  assert.equal(promtool(res.body), '');
  assert.match(res.body, /^armhook_process_resident_memory_bytes \d+/m);
  // Process CPU covers the process's life, not only the time since the first scrape.
  const cpuSeconds = Number(/^armhook_process_cpu_seconds_total ([\d.e+-]+)$/m.exec(res.body)?.[1]);
  assert.ok(
    cpuSeconds >= (cpuBefore.user + cpuBefore.system) / 1e6,
    `${cpuSeconds} s reported, ${(cpuBefore.user + cpuBefore.system) / 1e6} s used before the scrape`,
  );
});

test('openapi.json lists hooks with their declared parameters', async () => {
  const res = await fetchText(server, '/openapi.json');
  assert.equal(res.status, 200);
  const doc = res.json();
  assert.equal(doc.openapi, '3.1.0');
  const op = doc.paths['/ok'].post;
  assert.deepEqual(
    op.parameters.filter((p: { in: string }) => p.in === 'query').map((p: { name: string }) => p.name),
    ['who'],
  );
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
    assert.equal((await fetchText(guarded, '/metrics', { auth: 'ops:wrong' })).status, 401);
    const res = await fetchText(guarded, '/metrics', { auth: 'ops:correct horse' });
    assert.equal(res.status, 200);
    assert.match(res.body, /^armhook_auth_failures_total\{method="GET"\} 2$/m);
    assert.equal((await fetchText(guarded, '/healthz')).status, 200);
  } finally {
    await guarded.close();
  }
});
