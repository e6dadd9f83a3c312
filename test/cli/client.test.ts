// `armhook call`, `jobs`, `logs`, `cancel` against a real server: output to the right stream, the
// job's outcome as the exit code, resumption through a proxy that cuts the connection mid-job.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { setPassword } from '../../server/auth/passwd.ts';
import { startEntraFake } from '../fakes/entra.ts';
import { createTestPki } from '../helpers/certs.ts';
import { runCli } from '../helpers/cli.ts';
import { gateLine, release } from '../helpers/process.ts';
import { startCutProxy } from '../helpers/proxy.ts';
import { markerExists, markerLine, startServer, type TestServer } from '../helpers/server.ts';
import { waitDone } from '../jobs/helpers.ts';

let server: TestServer;
let env: Record<string, string>;

const numbered = (from: number, to: number): string => Array.from({ length: to - from + 1 }, (_, i) => `n${from + i}\n`).join('');

before(async () => {
  server = await startServer({
    scripts: {
      'ok.sh': '#!/bin/sh\n# @param who required pattern=[a-z]+ who to greet\necho "hello $who"\necho "to stderr" >&2\necho "bye"\n',
      'fail.sh': '#!/bin/sh\necho "about to fail"\nexit 3\n',
      'slow.sh': '#!/bin/sh\necho started\nexec sleep 30\n',
      'gated.sh': `#!/bin/sh\necho started\n${gateLine('gate-$name')}\necho released\n`,
      'declared.sh': `#!/bin/sh\n# @param rg required\n${markerLine('declared')}\n`,
      'halves.sh': `#!/bin/sh\nseq 1 500 | sed "s/^/n/"\n${gateLine('halves-$name')}\nseq 501 1000 | sed "s/^/n/"\n`,
      'flood.sh': '#!/bin/sh\nseq 1 20000 | sed "s/^/n/"\n',
    },
  });
  env = { ARMHOOK_CACERT: server.caPath, ARMHOOK_URL: server.url };
});
after(() => server.close());

test('call streams stdout to stdout and stderr to stderr, and exits 0 when the job succeeds', async () => {
  const { code, stdout, stderr } = await runCli(['call', `${server.url}/ok`, 'who=world'], env).exit;
  assert.equal(code, 0, stderr);
  assert.equal(stdout, 'hello world\nbye\n');
  assert.equal(stderr, 'to stderr\n');
});

test("call exits with the script's exit code when it fails (3)", async () => {
  const { code, stdout } = await runCli(['call', `${server.url}/fail`], env).exit;
  assert.equal(code, 3);
  assert.equal(stdout, 'about to fail\n');
});

test('call exits 124 when the job times out', async () => {
  const { code, stdout, stderr } = await runCli(['call', `${server.url}/slow`, '--timeout', '1'], env).exit;
  assert.equal(code, 124, stderr);
  assert.equal(stdout, 'started\n');
  assert.match(stderr, /timed-out/);
});

test('call exits 125 when the job is cancelled (by armhook cancel <id>)', async () => {
  const run = runCli(['call', `${server.url}/gated`, 'name=c1', '--json'], env);
  await run.waitFor((_out, err) => err.includes('started\n'));
  const jobs = await runCli(['jobs', '--hook', 'gated', '--status', 'running', '--json'], env).exit;
  assert.equal(jobs.code, 0, jobs.stderr);
  const [job] = (JSON.parse(jobs.stdout) as { items: Array<{ id: string }> }).items;
  assert.ok(job, jobs.stdout);
  const cancelled = await runCli(['cancel', job.id], env).exit;
  assert.equal(cancelled.code, 0, cancelled.stderr);
  assert.equal(cancelled.stdout, `job ${job.id} cancelled\n`);
  const { code, stdout } = await run.exit;
  assert.equal(code, 125);
  const record = JSON.parse(stdout) as { id: string; status: string };
  assert.deepEqual([record.id, record.status], [job.id, 'cancelled'], '--json: the final record on stdout');
  const again = await runCli(['cancel', `${server.url}/ui/jobs/${job.id}`], env).exit;
  assert.equal(again.code, 65, 'cancelling an ended job is refused (by the URL of its page)');
  assert.match(again.stderr, /409 job_ended/);
});

test('a refused request runs nothing and exits 65 with the server message; bad arguments exit 2', async () => {
  const refused = await runCli(['call', `${server.url}/declared`, 'nope=1'], env).exit;
  assert.equal(refused.code, 65);
  assert.match(refused.stderr, /^armhook: 400 /);
  assert.ok(!markerExists(server, 'declared'));
  const unknown = await runCli(['call', `${server.url}/no/such`], env).exit;
  assert.equal(unknown.code, 65);
  assert.match(unknown.stderr, /404 unknown_hook/);
  const usage = await runCli(['call', `${server.url}/declared`, 'novalue'], env).exit;
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /not name=value/);
  assert.ok(!markerExists(server, 'declared'));
});

test('an unreachable server exits 69; an untrusted certificate says how to trust it', async () => {
  const closed = await runCli(['call', 'https://127.0.0.1:9/ok'], env).exit;
  assert.equal(closed.code, 69);
  assert.match(closed.stderr, /connection refused/);
  const untrusted = await runCli(['call', `${server.url}/ok`, 'who=x'], { ARMHOOK_URL: server.url }).exit;
  assert.equal(untrusted.code, 69);
  assert.match(untrusted.stderr, /--cacert/);
  const insecure = await runCli(['call', `${server.url}/ok`, 'who=x', '--insecure'], {}).exit;
  assert.equal(insecure.code, 0, insecure.stderr);
});

test('--async prints the job id; logs <id> prints the output, logs --follow exits with the outcome; jobs lists it', async () => {
  const started = await runCli(['call', `${server.url}/fail`, '--async'], env).exit;
  assert.equal(started.code, 0, started.stderr);
  const id = started.stdout.trim();
  assert.match(id, /^[0-9A-Z]{26}$/);
  const followed = await runCli(['logs', id, '--follow'], env).exit;
  assert.equal(followed.code, 3);
  assert.equal(followed.stdout, 'about to fail\n');
  const log = await runCli(['logs', id], env).exit;
  assert.equal(log.code, 0);
  assert.match(log.stdout, /^about to fail\narmhook: job \S+ failed \(exit code 3\)\n$/);
  const list = await runCli(['jobs', '--limit', '500'], env).exit;
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^ID +STATUS +HOOK +CALLER +CREATED +DURATION$/m);
  assert.match(list.stdout, new RegExp(`^${id} +failed +fail +anonymous `, 'm'));
});

test('credentials: without them 77, with --user or ARMHOOK_USER/ARMHOOK_PASSWORD the job runs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'armhook-cli-users-'));
  const file = join(dir, 'htpasswd');
  await setPassword(file, 'api', 's3cret pw', { cost: 4 });
  const guarded = await startServer({ config: { htpasswd: file }, scripts: { 'ok.sh': '#!/bin/sh\necho "caller $ARMHOOK_USER"\n' } });
  try {
    const genv = { ARMHOOK_CACERT: guarded.caPath };
    const none = await runCli(['call', `${guarded.url}/ok`], genv).exit;
    assert.equal(none.code, 77);
    assert.match(none.stderr, /401/);
    const wrong = await runCli(['call', `${guarded.url}/ok`, '--user', 'api:wrong'], genv).exit;
    assert.equal(wrong.code, 77);
    const flag = await runCli(['call', `${guarded.url}/ok`, '--user', 'api:s3cret pw'], genv).exit;
    assert.equal(flag.code, 0, flag.stderr);
    assert.equal(flag.stdout, 'caller api\n');
    const fromEnv = await runCli(['call', `${guarded.url}/ok`], { ...genv, ARMHOOK_USER: 'api', ARMHOOK_PASSWORD: 's3cret pw' }).exit;
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
  } finally {
    await guarded.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a connection cut between events resumes through /jobs/<id>/events: no line missing, none twice', async () => {
  const proxy = await startCutProxy(server.port);
  try {
    const run = runCli(['call', `https://localhost:${proxy.port}/halves`, 'name=h1'], env);
    await run.waitFor((out) => out.endsWith('n500\n'));
    proxy.cut();
    await run.waitFor((_out, err) => err.includes('connection lost'));
    await release(server.markerDir, 'halves-h1');
    const { code, stdout, stderr } = await run.exit;
    assert.equal(code, 0, stderr);
    assert.equal(stdout, numbered(1, 1000));
    assert.ok(proxy.connections >= 2, 'the client reconnected');
    assert.match(stderr, /resuming job \S+ after event 501/);
  } finally {
    await proxy.close();
  }
});

test('a connection cut in the middle of an event (mid TLS record) while output floods: every line exactly once', async () => {
  const proxy = await startCutProxy(server.port);
  try {
    proxy.cutAfter(48_000);
    const { code, stdout, stderr } = await runCli(['call', `https://localhost:${proxy.port}/flood`], env).exit;
    assert.equal(code, 0, stderr);
    assert.equal(stdout, numbered(1, 20000));
    assert.ok(proxy.connections >= 2, 'the client reconnected');
    const id = /resuming job (\S+)/.exec(stderr)?.[1];
    assert.ok(id, stderr);
    assert.equal((await waitDone(server, id)).status, 'succeeded');
  } finally {
    await proxy.close();
  }
});

test("the README's curl recipe fails a pipeline step exactly when the script fails", async () => {
  const recipe = (path: string): Promise<number | null> =>
    new Promise((resolve) => {
      const script = `set -o pipefail; curl -sS -N --fail-with-body --cacert "$CA" -XPOST "$URL" | tee "$OUT" >/dev/null && grep -A1 '^event: done$' "$OUT" | grep -q '"status":"succeeded"'`;
      execFile(
        'bash',
        ['-c', script],
        {
          env: {
            PATH: process.env.PATH ?? '',
            CA: server.caPath,
            URL: `${server.url}${path}`,
            OUT: join(server.root, `recipe-${path.replace(/\W/g, '')}.sse`),
          },
        },
        (error) => resolve(error ? ((error as { code?: number }).code ?? 1) : 0),
      );
    });
  assert.equal(await recipe('/ok?who=ci'), 0);
  assert.notEqual(await recipe('/fail'), 0);
  assert.notEqual(await recipe('/declared?nope=1'), 0, 'a refused request fails the step too');
});

test('an Entra ID bearer token from --token or ARMHOOK_TOKEN; a wrong one exits 77', async () => {
  const pki = await createTestPki(['127.0.0.1']);
  const tenant = await startEntraFake({ cert: pki.serverCert, key: pki.serverKey });
  const oid = randomUUID();
  const htpasswd = join(server.root, 'bearer-users');
  await setPassword(htpasswd, 'api', 'unused pw', { cost: 4 });
  let guarded: TestServer | undefined;
  try {
    guarded = await startServer({
      config: { entraTenant: tenant.tenant, entraAudience: tenant.audience, entraAuthority: tenant.url, htpasswd },
      entra: { ca: pki.caCert },
      scripts: { 'ok.sh': '#!/bin/sh\necho "caller $ARMHOOK_USER"\n' },
    });
    const genv = { ARMHOOK_CACERT: guarded.caPath };
    const token = await tenant.token(oid);
    const flag = await runCli(['call', `${guarded.url}/ok`, '--token', token], genv).exit;
    assert.equal(flag.code, 0, flag.stderr);
    assert.equal(flag.stdout, `caller entra:${oid}\n`);
    const fromEnv = await runCli(['call', `${guarded.url}/ok`], { ...genv, ARMHOOK_TOKEN: token }).exit;
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    const wrong = await runCli(['call', `${guarded.url}/ok`, '--token', tenant.unsignedToken(oid)], genv).exit;
    assert.equal(wrong.code, 77);
    assert.match(wrong.stderr, /401/);
  } finally {
    await guarded?.close();
    await tenant.close();
  }
});

test('call runs a read-only typed handler on GET (its 405 to POST ran nothing)', async () => {
  const { startAzureServer } = await import('../azure/setup.ts');
  const azure = await startAzureServer();
  try {
    azure.arm.addGroup('cli-rg');
    const { code, stdout, stderr } = await runCli(['call', `${azure.server.url}/azure/groups`, '--json'], { ARMHOOK_CACERT: azure.server.caPath }).exit;
    assert.equal(code, 0, stderr);
    const record = JSON.parse(stdout) as { hook: string; method: string; status: string; result: unknown };
    assert.deepEqual([record.hook, record.method, record.status], ['azure/groups', 'GET', 'succeeded']);
    assert.match(JSON.stringify(record.result), /cli-rg/);
  } finally {
    await azure.close();
  }
});
