// Parameters → environment: query, form and JSON scalars become environment
// variables (never argv, never a shell); bad names, proxy names, NUL, oversized values and bodies,
// duplicates and invalid declared parameters are 400/413 before anything runs; the raw body is
// stdin; the environment is exactly an allow-list + params + context + a private AZURE_CONFIG_DIR.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import {
  assertJsonError,
  assertNothingRan,
  curl,
  curlResponse,
  doneRecord,
  fetchText,
  listJobs,
  markerLine,
  parseSse,
  readTree,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

let server: TestServer;
let small: TestServer;
/** The same scripts started by Node's own spawn instead of the posix_spawn helper. */
let nodeSpawned: TestServer;

const DECLARED_HEADER = [
  '# @description A hook with declared parameters',
  '# @param name required pattern=[a-z]+ The name',
  '# @param size default=small pattern=small|large The size',
  '# @param pw secret default=hunter2-default-pw The password',
  '# @param note optional A note',
].join('\n');

// Dumps the environment exactly as the script got it (/proc/$$/environ is what was passed to exec)
// and the stdin bytes, both keyed by job id.
const ENV_SCRIPT =
  '#!/bin/sh\ncat /proc/$$/environ > "$ARMHOOK_TEST_MARKERS/env-$ARMHOOK_JOB_ID"\ncat > "$ARMHOOK_TEST_MARKERS/stdin-$ARMHOOK_JOB_ID"\necho ok\n';

const AZDIR_SCRIPT =
  '#!/bin/sh\necho "dir=$AZURE_CONFIG_DIR"\nstat -c "mode=%a owner=%u" "$AZURE_CONFIG_DIR"\ntouch "$AZURE_CONFIG_DIR/token-cache" && echo writable\n';

before(async () => {
  process.env.SECRET_SERVER_THING = 'server-only-secret-value';
  process.env.AZURE_CLIENT_SECRET = 'server-only-azure-secret';
  process.env.ARMHOOK_HTPASSWD_EXTRA = 'server-only-armhook-setting';
  process.env.LD_PRELOAD = '';
  server = await startServer({
    scripts: {
      'env.sh': ENV_SCRIPT,
      'refuse.sh': `#!/bin/sh\n${markerLine('refuse')}\necho ran\n`,
      'strict.sh': `#!/bin/sh\n${DECLARED_HEADER}\n${markerLine('strict')}\necho ran\n`,
      'declared.sh': `#!/bin/sh\n${DECLARED_HEADER}\ncat /proc/$$/environ > "$ARMHOOK_TEST_MARKERS/env-$ARMHOOK_JOB_ID"\necho "pw=$pw"\necho "pw on stderr: $pw" >&2\n`,
      'multisecret.sh': '#!/bin/sh\n# @param key required secret A key\nprintf "%s\\n" "$key"\n',
      'none.sh': `#!/bin/sh\n# @params none\n${markerLine('none')}\n`,
      'ignore-stdin.sh': '#!/bin/sh\necho "not reading stdin"\nexit 0\n',
      'azdir.sh': AZDIR_SCRIPT,
    },
  });
  nodeSpawned = await startServer({
    config: { spawner: 'node' },
    scripts: {
      'env.sh': ENV_SCRIPT,
      'ignore-stdin.sh': '#!/bin/sh\necho "not reading stdin"\nexit 0\n',
      'azdir.sh': AZDIR_SCRIPT,
    },
  });
  small = await startServer({
    config: { bodyLimit: 1024 },
    scripts: { 'refuse.sh': `#!/bin/sh\n${markerLine('refuse')}\n`, 'env.sh': ENV_SCRIPT },
  });
});

/** The main server, started with the default spawner (the posix_spawn helper when python3 exists). */
function defaultServer(): TestServer {
  return server;
}

after(async () => {
  await server.close();
  await small.close();
  await nodeSpawned.close();
});

interface Run {
  record: Record<string, any>;
  events: ReturnType<typeof parseSse>['events'];
  stdout: string;
  env: Map<string, string>;
  stdin: Buffer;
}

/** Runs a hook with curl and returns its done record, its environment and its stdin bytes. */
async function run(target: TestServer, hook: string, args: string[] = []): Promise<Run> {
  const result = await curl(target, ['-XPOST', ...args, `${target.url}/${hook}`]);
  assert.equal(result.code, 0, result.stderr);
  const { events } = parseSse(result.stdout);
  const record = doneRecord(events);
  const env = new Map<string, string>();
  const envFile = join(target.markerDir, `env-${record.id}`);
  if (existsSync(envFile)) {
    for (const entry of (await readFile(envFile, 'utf8')).split('\0')) {
      if (entry === '') continue;
      const eq = entry.indexOf('=');
      env.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
  }
  const stdinFile = join(target.markerDir, `stdin-${record.id}`);
  const stdin = existsSync(stdinFile) ? await readFile(stdinFile) : Buffer.alloc(0);
  return { record, events, stdout: result.stdout, env, stdin };
}

/** A refused request: JSON 4xx, no job, the script's marker absent. */
async function refused(target: TestServer, hook: string, args: string[], status: number, marker = 'refuse'): Promise<{ error: string; message: string }> {
  const before = (await listJobs(target)).length;
  const res = await curlResponse(target, ['-XPOST', ...args, `${target.url}/${hook}`]);
  const body = assertJsonError(res, status);
  assert.equal(res.headers['armhook-job-id'], undefined, 'no job id: no job');
  await assertNothingRan(target, marker, before);
  return body;
}

test('query parameters become environment variables (hyphens folded to _), and never reach the log', async () => {
  const { record, env } = await run(server, 'env?alpha=1&beta_two=hello%20world&gamma-three=x%2By&empty=');
  assert.equal(record.status, 'succeeded');
  assert.equal(env.get('alpha'), '1');
  assert.equal(env.get('beta_two'), 'hello world');
  assert.equal(env.get('gamma_three'), 'x+y');
  assert.equal(env.get('empty'), '');
  assert.deepEqual(record.params, { alpha: '1', beta_two: 'hello world', gamma_three: 'x+y', empty: '' });
  assert.ok(!server.logs.text().includes('hello world') && !server.logs.text().includes('beta_two=hello'), 'request logs show the path only');
});

test('an application/x-www-form-urlencoded body gives parameters', async () => {
  const { record, env, stdin } = await run(server, 'env?fromquery=q', ['--data', 'colour=dark%20blue&count=3']);
  assert.equal(record.status, 'succeeded');
  assert.equal(env.get('colour'), 'dark blue');
  assert.equal(env.get('count'), '3');
  assert.equal(env.get('fromquery'), 'q');
  assert.equal(stdin.toString(), 'colour=dark%20blue&count=3', 'the raw body is still stdin');
});

test('a JSON object body gives its top-level scalars as parameters; nested values stay in stdin', async () => {
  const body = JSON.stringify({ s: 'text', n: 42, f: 1.5, b: true, nested: { x: 1 }, arr: [1, 2], nothing: null });
  const { record, env, stdin } = await run(server, 'env', ['-H', 'Content-Type: application/json', '--data-binary', body]);
  assert.equal(record.status, 'succeeded');
  assert.equal(env.get('s'), 'text');
  assert.equal(env.get('n'), '42');
  assert.equal(env.get('f'), '1.5');
  assert.equal(env.get('b'), 'true');
  for (const absent of ['nested', 'arr', 'nothing']) assert.ok(!env.has(absent), `${absent} is not a parameter`);
  assert.equal(stdin.toString(), body);
});

for (const name of ['A', 'Alpha', '1a', 'a.b', 'a%20b', 'a+b', '_a', '%C3%A9', 'a%00b', 'a$b', 'a%3Bb']) {
  test(`bad parameter name ${decodeURIComponent(name)} is a 400 and nothing runs`, async () => {
    const body = await refused(server, `refuse?${name}=1`, [], 400);
    assert.match(body.message, /name/i);
  });
}

test('an empty parameter name is a 400', async () => {
  await refused(server, 'refuse?=value', [], 400);
});

test('bad names in a form body and in a JSON body are 400s too', async () => {
  await refused(server, 'refuse', ['--data', 'Bad=1'], 400);
  await refused(server, 'refuse', ['-H', 'Content-Type: application/json', '--data-binary', '{"Bad": 1}'], 400);
  await refused(server, 'refuse', ['-H', 'Content-Type: application/json', '--data-binary', '{"ok": 1, "a.b": "x"}'], 400);
});

test('a malformed JSON body is a 400 and nothing runs', async () => {
  await refused(server, 'refuse', ['-H', 'Content-Type: application/json', '--data-binary', '{"a": '], 400);
});

for (const name of ['http_proxy', 'https_proxy', 'no_proxy', 'all-proxy', 'all_proxy', 'ftp_proxy', 'HTTP_PROXY', 'https-proxy']) {
  test(`proxy variable ${name} is refused (400) and nothing runs`, async () => {
    await refused(server, `refuse?${name}=http://attacker.example:3128`, [], 400);
  });
}

test('a proxy variable in a JSON body is refused too', async () => {
  await refused(server, 'refuse', ['-H', 'Content-Type: application/json', '--data-binary', '{"https_proxy": "http://attacker.example"}'], 400);
});

test('a NUL in a value is a 400 (query, form and JSON) and nothing runs', async () => {
  await refused(server, 'refuse?v=a%00b', [], 400);
  await refused(server, 'refuse', ['--data', 'v=a%00b'], 400);
  await refused(server, 'refuse', ['-H', 'Content-Type: application/json', '--data-binary', '{"v": "a\\u0000b"}'], 400);
});

test('a value of 8 KiB is accepted; one byte more is a 400 and nothing runs', async () => {
  const ok = await run(server, `env?big=${'x'.repeat(8192)}`);
  assert.equal(ok.record.status, 'succeeded');
  assert.equal(ok.env.get('big')?.length, 8192);
  const body = await refused(server, `refuse?big=${'x'.repeat(8193)}`, [], 400);
  assert.match(body.message, /8192|8 ?KiB|limit/i);
});

test('a multi-byte value over 8 KiB in bytes is refused (the limit counts bytes)', async () => {
  // 2800 × "€" is 2800 characters but 8400 bytes.
  await refused(server, 'refuse', ['--data', `big=${encodeURIComponent('€'.repeat(2800))}`], 400);
});

test('parameters totalling over 64 KiB are a 400 and nothing runs', async () => {
  const form = Array.from({ length: 9 }, (_, i) => `v${i}=${'y'.repeat(7600)}`).join('&');
  const body = await refused(server, 'refuse', ['--data', form], 400);
  assert.match(body.message, /total|65536|64 ?KiB/i);
});

test('more parameters than the limit is a 400 and nothing runs', async () => {
  const query = Array.from({ length: 200 }, (_, i) => `p${i}=1`).join('&');
  await refused(server, `refuse?${query}`, [], 400);
});

test('a body over the body limit is a 413 and nothing runs (Content-Length and chunked)', async () => {
  const bodyFile = join(small.root, 'big.bin');
  await writeFile(bodyFile, randomBytes(4096));
  const res1 = await refused(small, 'refuse', ['-H', 'Content-Type: application/octet-stream', '--data-binary', `@${bodyFile}`], 413);
  assert.match(res1.message, /1024|large|limit/i);
  await refused(small, 'refuse', ['-H', 'Content-Type: application/octet-stream', '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${bodyFile}`], 413);
  await refused(small, 'refuse', ['--data', `a=${'z'.repeat(2000)}`], 413);
});

test('a body of exactly the body limit is accepted', async () => {
  const payload = randomBytes(1024);
  const bodyFile = join(small.root, 'exact.bin');
  await writeFile(bodyFile, payload);
  const { record, stdin } = await run(small, 'env', ['-H', 'Content-Type: application/octet-stream', '--data-binary', `@${bodyFile}`]);
  assert.equal(record.status, 'succeeded');
  assert.ok(stdin.equals(payload));
});

test('a parameter given twice is a 400 (query, query+form, folded hyphen, query+JSON) and nothing runs', async () => {
  await refused(server, 'refuse?a=1&a=2', [], 400);
  await refused(server, 'refuse?a=1', ['--data', 'a=2'], 400);
  await refused(server, 'refuse?a-b=1&a_b=2', [], 400);
  await refused(server, 'refuse?a=1', ['-H', 'Content-Type: application/json', '--data-binary', '{"a": "2"}'], 400);
});

test('declared hook: an unknown parameter is a 400 naming it, and nothing runs', async () => {
  const body = await refused(server, 'strict?name=abc&colour=red', [], 400, 'strict');
  assert.match(body.message, /colour/);
});

test('declared hook: a missing required parameter is a 400 naming it, and nothing runs', async () => {
  const body = await refused(server, 'strict?size=large', [], 400, 'strict');
  assert.match(body.message, /name/);
});

test('declared hook: a value not matching its pattern is a 400 that does not echo the value', async () => {
  const body = await refused(server, 'strict?name=NOT-lower-ZZQ', [], 400, 'strict');
  assert.match(body.message, /name/);
  assert.ok(!body.message.includes('NOT-lower-ZZQ'));
});

test('declared hook: pattern= is anchored (pattern=[a-z]+ refuses abc1, 1abc, abc\\n; small|large refuses smallish)', async () => {
  for (const query of ['name=abc1', 'name=1abc', 'name=abc%0A', 'name=abc&size=smallish', 'name=abc&size=xlarge']) {
    await refused(server, `strict?${query}`, [], 400, 'strict');
  }
});

test('declared hook: @params none refuses any parameter', async () => {
  await refused(server, 'none?x=1', [], 400, 'none');
});

test('declared hook: defaults are applied, optional params without default stay unset, secrets are masked in output and record', async () => {
  const { record, env, events, stdout } = await run(server, 'declared?name=abc');
  assert.equal(record.status, 'succeeded', stdout);
  assert.equal(env.get('name'), 'abc');
  assert.equal(env.get('size'), 'small');
  assert.equal(env.get('pw'), 'hunter2-default-pw', 'the secret default reaches the script');
  assert.ok(!env.has('note'));
  assert.deepEqual(record.params, { name: 'abc', size: 'small', pw: '***' });
  assert.ok(events.some((e) => e.event === 'message' && e.data === 'pw=***'));
  assert.ok(events.some((e) => e.event === 'stderr' && e.data === 'pw on stderr: ***'));
  assert.ok(!stdout.includes('hunter2-default-pw'));

  const given = await run(server, 'declared?name=xyz&size=large&pw=Very-Secret-42&note=hello');
  assert.equal(given.env.get('pw'), 'Very-Secret-42');
  assert.equal(given.env.get('size'), 'large');
  assert.equal(given.env.get('note'), 'hello');
  assert.ok(!given.stdout.includes('Very-Secret-42'));
  assert.ok(!server.logs.text().includes('Very-Secret-42'));
  assert.ok(!(await readTree(server.dataDir)).includes('Very-Secret-42'), 'the secret is stored nowhere');
  const job = await fetchText(server, `/jobs/${given.record.id}`);
  assert.equal(job.json().params.pw, '***');
});

test('a secret containing a line break is masked too (each of its lines never reaches the stream)', async () => {
  const key = 'first-line-of-the-key\nsecond-line-of-the-key';
  const result = await curl(server, ['-XPOST', '-G', '--data-urlencode', `key=${key}`, `${server.url}/multisecret`]);
  const { events } = parseSse(result.stdout);
  assert.equal(doneRecord(events).status, 'succeeded');
  assert.ok(!result.stdout.includes('first-line-of-the-key'), result.stdout);
  assert.ok(!result.stdout.includes('second-line-of-the-key'), result.stdout);
});

test('GET on a declared hook describes it: secrets flagged, their default never shown', async () => {
  const res = await curlResponse(server, [`${server.url}/strict`]);
  assert.equal(res.status, 200);
  const description = res.json();
  assert.equal(description.path, '/strict');
  assert.equal(description.description, 'A hook with declared parameters');
  const byName = Object.fromEntries(description.params.map((p: { name: string }) => [p.name, p]));
  assert.equal(byName.name.required, true);
  assert.equal(byName.name.pattern, '[a-z]+');
  assert.equal(byName.size.default, 'small');
  assert.equal(byName.pw.secret, true);
  assert.ok(!('default' in byName.pw), 'a secret default is not shown');
  assert.ok(!res.body.includes('hunter2-default-pw'));
  assert.ok(!existsSync(join(server.markerDir, 'strict')));
});

test('values with shell metacharacters arrive verbatim and never execute', async () => {
  const m = server.markerDir;
  const values: Record<string, string> = {
    v1: `$(touch ${m}/pwned1)`,
    v2: `\`touch ${m}/pwned2\``,
    v3: `'; touch ${m}/pwned3; echo '`,
    v4: `"; touch ${m}/pwned4; echo "`,
    v5: `a;b|c&d>e<f`,
    v6: '${HOME} $PATH * ? ~',
    v7: 'line one\nline two',
    v8: `--help -rf /; touch ${m}/pwned5`,
  };
  const args = Object.entries(values).flatMap(([k, v]) => ['--data-urlencode', `${k}=${v}`]);
  const { record, env } = await run(server, 'env', args);
  assert.equal(record.status, 'succeeded');
  for (const [k, v] of Object.entries(values)) assert.equal(env.get(k), v, k);
  for (const n of [1, 2, 3, 4, 5]) assert.ok(!existsSync(join(m, `pwned${n}`)), `pwned${n} was never created`);
});

for (const spawner of ['default', 'node'] as const) {
  test(`${spawner}: the raw body arrives on stdin byte for byte (binary, all 256 byte values)`, async () => {
    const server = spawner === 'node' ? nodeSpawned : defaultServer();
    const payload = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(200_000), Buffer.from('\r\n\0end')]);
    const file = join(server.root, 'payload.bin');
    await writeFile(file, payload);
    const { record, stdin } = await run(server, 'env', ['-H', 'Content-Type: application/octet-stream', '--data-binary', `@${file}`]);
    assert.equal(record.status, 'succeeded');
    assert.equal(stdin.length, payload.length);
    assert.ok(stdin.equals(payload), 'stdin is the body, unchanged');
  });

  test(`${spawner}: a body without a Content-Type is stdin too`, async () => {
    const server = spawner === 'node' ? nodeSpawned : defaultServer();
    const payload = Buffer.from('plain bytes \x00\xff without a type');
    const res = await fetchText(server, '/env', { method: 'POST', body: payload });
    assert.equal(res.status, 200, res.body);
    const record = doneRecord(parseSse(res.body).events);
    assert.equal(record.status, 'succeeded');
    const stdin = await readFile(join(server.markerDir, `stdin-${record.id}`));
    assert.ok(stdin.equals(payload));
  });

  test(`${spawner}: a script that never reads a large stdin still succeeds`, async () => {
    const server = spawner === 'node' ? nodeSpawned : defaultServer();
    const file = join(server.root, 'large.bin');
    await writeFile(file, randomBytes(900_000));
    const { record, events } = await run(server, 'ignore-stdin', ['-H', 'Content-Type: application/octet-stream', '--data-binary', `@${file}`]);
    assert.equal(record.status, 'succeeded', JSON.stringify(record));
    assert.equal(record.exitCode, 0);
    assert.ok(events.some((e) => e.data === 'not reading stdin'));
  });

  test(`${spawner}: the environment is exactly the allow-list + params + ARMHOOK_* context + AZURE_CONFIG_DIR`, async () => {
    const server = spawner === 'node' ? nodeSpawned : defaultServer();
    const { record, env } = await run(server, 'env?myparam=value1');
    assert.equal(record.status, 'succeeded');
    const allowList = new Set(['PATH', 'HOME', 'LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'TZ', 'TMPDIR', 'USER', 'LOGNAME']);
    const context = new Set(['ARMHOOK_JOB_ID', 'ARMHOOK_HOOK', 'ARMHOOK_USER', 'ARMHOOK_METHOD', 'ARMHOOK_BIN', 'AZURE_CONFIG_DIR']);
    // From instance metadata once Azure is configured; absent without it.
    const metadata = new Set(['AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AZURE_LOCATION']);
    // These servers use a loopback IMDS address, which scripts' az and identity libraries follow.
    const followed = new Set(['MSI_ENDPOINT', 'AZURE_POD_IDENTITY_AUTHORITY_HOST']);
    for (const name of env.keys()) {
      assert.ok(
        allowList.has(name) || context.has(name) || metadata.has(name) || followed.has(name) || name === 'myparam',
        `unexpected variable ${name} in the script's environment`,
      );
    }
    assert.equal(env.get('MSI_ENDPOINT'), `${server.config.imdsEndpoint}/metadata/identity/oauth2/token`);
    assert.equal(env.get('AZURE_POD_IDENTITY_AUTHORITY_HOST'), server.config.imdsEndpoint);
    for (const name of allowList) {
      if (env.has(name)) assert.equal(env.get(name), process.env[name], `${name} is inherited as is`);
    }
    assert.ok(env.has('PATH'));
    assert.ok(!env.has('SECRET_SERVER_THING') && !env.has('AZURE_CLIENT_SECRET') && !env.has('ARMHOOK_HTPASSWD_EXTRA') && !env.has('LD_PRELOAD'));
    for (const value of env.values()) assert.ok(!value.includes('server-only'), 'no server secret in any value');
    assert.equal(env.get('myparam'), 'value1');
    assert.equal(env.get('ARMHOOK_JOB_ID'), record.id);
    assert.equal(env.get('ARMHOOK_HOOK'), 'env');
    assert.equal(env.get('ARMHOOK_USER'), 'anonymous');
    assert.equal(env.get('ARMHOOK_METHOD'), 'POST');
    assert.equal(env.get('ARMHOOK_BIN'), join(import.meta.dirname, '..', '..', 'bin', 'armhook'));
    assert.ok(env.get('AZURE_CONFIG_DIR'));
  });

  test(`${spawner}: AZURE_CONFIG_DIR is private (0700), per job, outside the data dir, and removed when the job ends`, async () => {
    const server = spawner === 'node' ? nodeSpawned : defaultServer();
    const first = await run(server, 'azdir');
    const second = await run(server, 'azdir');
    const dirOf = (r: Run): string => r.events.find((e) => e.data.startsWith('dir='))?.data.slice(4) ?? '';
    const dir1 = dirOf(first);
    const dir2 = dirOf(second);
    assert.ok(dir1 && dir2);
    assert.notEqual(dir1, dir2, 'each job has its own');
    assert.ok(
      first.events.some((e) => e.data === `mode=700 owner=${process.getuid?.()}`),
      first.stdout,
    );
    assert.ok(first.events.some((e) => e.data === 'writable'));
    for (const dir of [dir1, dir2]) {
      assert.ok(relative(server.dataDir, dir).startsWith('..'), `${dir} is outside the data dir`);
      assert.ok(relative(server.scriptsDir, dir).startsWith('..'), `${dir} is outside the scripts dir`);
      assert.ok(!existsSync(dir), `${dir} was removed once the job ended`);
    }
  });
}

test("JSON numbers reach the script exactly as written (the probe's body)", async () => {
  const body = '{"a":12345678901234567890,"b":1.0,"d":1e400}';
  const { record, env } = await run(server, 'env', ['-H', 'Content-Type: application/json', '--data-binary', body]);
  assert.equal(record.status, 'succeeded');
  assert.deepEqual([env.get('a'), env.get('b'), env.get('d')], ['12345678901234567890', '1.0', '1e400']);
});

test('a 1 MB form body of NULs gets a short 400 that quotes only an escaped prefix, and nothing runs', async () => {
  const file = join(server.root, 'nuls.bin');
  await writeFile(file, Buffer.alloc(1024 * 1024));
  const body = await refused(server, 'refuse', ['-H', 'Content-Type: application/x-www-form-urlencoded', '--data-binary', `@${file}`], 400);
  assert.ok(JSON.stringify(body).length < 1000, `the answer is ${JSON.stringify(body).length} bytes`);
});

test('a long unknown path is a 404 that quotes only a prefix of it', async () => {
  const res = await fetchText(server, `/${'a'.repeat(8000)}`);
  assertJsonError(res, 404);
  assert.ok(res.body.length < 1000, `the answer is ${res.body.length} bytes`);
});
