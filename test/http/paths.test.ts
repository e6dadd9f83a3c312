// Hook resolution: URL paths map to scripts under scripts/, and resolution
// can never leave that directory (no `..`, encoded or double-encoded; no symlink escape; no
// dotfiles; no non-executable files). Reserved names are refused at start-up; new and edited
// scripts are picked up without a restart.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  assertJsonError,
  assertNothingRan,
  curl,
  curlResponse,
  doneRecord,
  fetchText,
  listJobs,
  markerExists,
  markerLine,
  parseSse,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

let server: TestServer;
let outside: string;

before(async () => {
  server = await startServer({
    scripts: {
      'hello.sh': `#!/bin/sh\n${markerLine('hello')}\necho hello\n`,
      // Targets of the traversal tests: nothing else ever runs them.
      'target.sh': `#!/bin/sh\n${markerLine('target')}\necho target\n`,
      'vm/inner.sh': `#!/bin/sh\n${markerLine('inner')}\necho inner\n`,
      'vm/create.sh': `#!/bin/sh\n${markerLine('vm-create')}\necho created\n`,
      'real.sh': `#!/bin/sh\n${markerLine('real')}\necho "real script as $ARMHOOK_HOOK"\n`,
      '.hidden.sh': `#!/bin/sh\n${markerLine('hidden')}\n`,
      '.hidden': `#!/bin/sh\n${markerLine('hidden-bare')}\n`,
      'sub/.secret.sh': `#!/bin/sh\n${markerLine('sub-secret')}\n`,
      'noexec.sh!noexec': `#!/bin/sh\n${markerLine('noexec')}\n`,
      'tool.py': `#!/bin/sh\n${markerLine('tool')}\necho tool ran\n`,
    },
  });
  // A script outside the scripts dir, reachable only through symlinks (file and directory).
  outside = await mkdtemp(join(tmpdir(), 'armhook-outside-'));
  await writeFile(join(outside, 'evil.sh'), `#!/bin/sh\n${markerLine('evil')}\necho escaped\n`.replaceAll('$ARMHOOK_TEST_MARKERS', server.markerDir));
  await chmod(join(outside, 'evil.sh'), 0o755);
  await symlink(join(outside, 'evil.sh'), join(server.scriptsDir, 'escape.sh'));
  await symlink(outside, join(server.scriptsDir, 'outdir'));
  await symlink(join(server.scriptsDir, 'real.sh'), join(server.scriptsDir, 'alias.sh'));
});

after(async () => {
  await server.close();
  await rm(outside, { recursive: true, force: true });
});

test('a script runs by its path without the extension, nested paths included', async () => {
  const result = await curl(server, ['-XPOST', `${server.url}/vm/create`]);
  assert.equal(result.code, 0, result.stderr);
  const { events } = parseSse(result.stdout);
  const record = doneRecord(events);
  assert.equal(record.status, 'succeeded');
  assert.equal(record.hook, 'vm/create');
  assert.ok(markerExists(server, 'vm-create'));
});

test('any executable works as a hook, not only .sh', async () => {
  const result = await curl(server, ['-XPOST', `${server.url}/tool`]);
  const { events } = parseSse(result.stdout);
  assert.equal(doneRecord(events).status, 'succeeded');
  assert.ok(events.some((e) => e.event === 'message' && e.data === 'tool ran'));
});

for (const raw of [
  '/../target',
  '/../../../../etc/passwd',
  '/%2e%2e/target',
  '/%2E%2E/%2e%2e/etc/passwd',
  '/%252e%252e/target',
  '/vm/..%2ftarget',
  '/vm/%2e%2e%2ftarget',
  '/vm/../target',
  '/vm/%252e%252e%252ftarget',
  '//etc/passwd',
  '//target',
  '/vm//inner',
  '/target/',
  '/.%2e/target',
  '/vm/.%2e/target',
  '/%2ftarget',
  '/vm%2finner',
  '/target%00',
  '/target%20',
]) {
  test(`traversal ${raw} is refused with a JSON 4xx and runs nothing`, async () => {
    const before = (await listJobs(server)).length;
    const res = await curlResponse(server, ['--path-as-is', '-XPOST', `${server.url}${raw}`]);
    assert.ok(res.status === 404 || res.status === 400, `expected 404 (or 400), got ${res.status}: ${res.body}`);
    assertJsonError(res, res.status);
    assert.equal(res.headers['armhook-job-id'], undefined, 'no job id: no job');
    await assertNothingRan(server, 'target', before);
    await assertNothingRan(server, 'inner', before);
  });
}

test('traversal on GET is refused too (no description of files outside)', async () => {
  const res = await curlResponse(server, ['--path-as-is', `${server.url}/../../../../etc/passwd`]);
  assert.ok(res.status === 404 || res.status === 400, `got ${res.status}`);
  assertJsonError(res, res.status);
  assert.ok(!res.body.includes('root:'), 'no file content leaks');
});

test('a symlink inside scripts/ to a script outside it is not a hook', async () => {
  const before = (await listJobs(server)).length;
  const res = await curlResponse(server, ['-XPOST', `${server.url}/escape`]);
  assertJsonError(res, 404);
  await assertNothingRan(server, 'evil', before);
  const described = await fetchText(server, '/escape');
  assertJsonError(described, 404);
});

test('a symlinked directory that leads outside scripts/ is not followed', async () => {
  const before = (await listJobs(server)).length;
  const res = await curlResponse(server, ['-XPOST', `${server.url}/outdir/evil`]);
  assertJsonError(res, 404);
  await assertNothingRan(server, 'evil', before);
});

test('the catalog does not list symlink escapes, dotfiles or non-executable files', async () => {
  const res = await fetchText(server, '/hooks');
  assert.equal(res.status, 200);
  const paths = res.json<{ hooks: Array<{ path: string }> }>().hooks.map((h) => h.path);
  assert.ok(paths.includes('/hello') && paths.includes('/vm/create') && paths.includes('/alias'), paths.join(' '));
  for (const refused of ['/escape', '/outdir/evil', '/.hidden', '/noexec', '/sub/.secret']) assert.ok(!paths.includes(refused), `${refused} is not listed`);
});

test('a symlink to a script inside scripts/ works, under its own path', async () => {
  const result = await curl(server, ['-XPOST', `${server.url}/alias`]);
  const { events } = parseSse(result.stdout);
  const record = doneRecord(events);
  assert.equal(record.status, 'succeeded');
  assert.equal(record.hook, 'alias');
  assert.ok(
    events.some((e) => e.data === 'real script as alias'),
    result.stdout,
  );
});

for (const raw of ['/.hidden', '/.hidden.sh', '/sub/.secret', '/%2ehidden']) {
  test(`dotfile ${raw} is not a hook`, async () => {
    const before = (await listJobs(server)).length;
    const res = await curlResponse(server, ['--path-as-is', '-XPOST', `${server.url}${raw}`]);
    assertJsonError(res, 404);
    await assertNothingRan(server, 'hidden', before);
    await assertNothingRan(server, 'hidden-bare', before);
    await assertNothingRan(server, 'sub-secret', before);
  });
}

test('a non-executable file is not a hook', async () => {
  const before = (await listJobs(server)).length;
  const res = await curlResponse(server, ['-XPOST', `${server.url}/noexec`]);
  assertJsonError(res, 404);
  await assertNothingRan(server, 'noexec', before);
  assertJsonError(await fetchText(server, '/noexec'), 404);
});

test('an unknown hook is a 404 JSON error pointing to the catalog', async () => {
  const before = (await listJobs(server)).length;
  const res = await curlResponse(server, ['-XPOST', `${server.url}/no/such/hook`]);
  const body = assertJsonError(res, 404);
  assert.match(body.message, /\/hooks/);
  assert.equal((await listJobs(server)).length, before);
});

test('a reserved name cannot be reached as a script (POST /jobs, /hooks, /healthz run nothing)', async () => {
  const before = (await listJobs(server)).length;
  for (const path of ['/jobs', '/hooks', '/healthz', '/readyz', '/metrics', '/azure', '/openapi.json', '/ui']) {
    const res = await fetchText(server, path, { method: 'POST' });
    assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
    assert.equal(res.headers['armhook-job-id'], undefined, path);
  }
  assert.equal((await listJobs(server)).length, before);
});

test('a script added after start is picked up without a restart', async () => {
  assertJsonError(await fetchText(server, '/late/arrival', { method: 'POST' }), 404);
  await mkdir(join(server.scriptsDir, 'late'), { recursive: true });
  const file = join(server.scriptsDir, 'late', 'arrival.sh');
  await writeFile(file, '#!/bin/sh\n# @description Arrived late\necho late arrival\n');
  await chmod(file, 0o755);
  const result = await curl(server, ['-XPOST', `${server.url}/late/arrival`]);
  const { events } = parseSse(result.stdout);
  assert.equal(doneRecord(events).status, 'succeeded');
  assert.ok(events.some((e) => e.data === 'late arrival'));
  const described = await fetchText(server, '/late/arrival');
  assert.equal(described.json().description, 'Arrived late');
});

test("a script removed or renamed after being served is gone at once; its replacement is found (directory listings are cached by the directory's times)", async () => {
  const dir = join(server.scriptsDir, 'churn');
  await mkdir(dir, { recursive: true });
  const first = join(dir, 'tool.sh');
  await writeFile(first, '#!/bin/sh\necho first\n');
  await chmod(first, 0o755);
  assert.equal((await fetchText(server, '/churn/tool')).status, 200);
  await rm(first);
  assertJsonError(await fetchText(server, '/churn/tool'), 404);
  assertJsonError(await fetchText(server, '/churn/tool', { method: 'POST' }), 404);
  const second = join(dir, 'tool.py');
  await writeFile(second, '#!/bin/sh\n# @description Second tool\necho second\n');
  await chmod(second, 0o755);
  assert.equal((await fetchText(server, '/churn/tool')).json().description, 'Second tool');
  const { events } = parseSse((await curl(server, ['-XPOST', `${server.url}/churn/tool`])).stdout);
  assert.ok(events.some((e) => e.data === 'second'));
});

test('an edited header takes effect without a restart', async () => {
  const file = join(server.scriptsDir, 'edited.sh');
  await writeFile(file, '#!/bin/sh\n# @description First version\n# @param color required The color\necho "color=$color"\n');
  await chmod(file, 0o755);
  let described = await fetchText(server, '/edited');
  assert.equal(described.json().description, 'First version');
  assertJsonError(await fetchText(server, '/edited?shape=round', { method: 'POST' }), 400);

  await writeFile(file, '#!/bin/sh\n# @description Second version, with a shape\n# @param shape required The shape\necho "shape=$shape"\n');
  described = await fetchText(server, '/edited');
  assert.equal(described.json().description, 'Second version, with a shape');
  assert.deepEqual(
    described.json().params.map((p: { name: string }) => p.name),
    ['shape'],
  );
  const result = await curl(server, ['-XPOST', `${server.url}/edited?shape=round`]);
  const { events } = parseSse(result.stdout);
  assert.equal(doneRecord(events).status, 'succeeded', result.stdout);
  assert.ok(events.some((e) => e.data === 'shape=round'));
  assertJsonError(await fetchText(server, '/edited?color=red', { method: 'POST' }), 400);
});

test('an in-place edit of the same size within one file-timestamp tick still takes effect', async () => {
  // File timestamps are coarse (one kernel tick): an edit right after a read can keep inode, size
  // and mtime. Restoring the mtime after the edit makes that collision deterministic here.
  const file = join(server.scriptsDir, 'racy.sh');
  await writeFile(file, '#!/bin/sh\n# @description Version A\n# @param aaaa required\necho "a=$aaaa"\n');
  await chmod(file, 0o755);
  const reference = join(server.root, 'racy.mtime');
  execFileSync('touch', ['-r', file, reference]); // remembers the mtime to the nanosecond
  assert.equal((await fetchText(server, '/racy')).json().description, 'Version A');
  await writeFile(file, '#!/bin/sh\n# @description Version B\n# @param bbbb required\necho "b=$bbbb"\n');
  execFileSync('touch', ['-r', reference, file]);
  const described = await fetchText(server, '/racy');
  assert.equal(described.json().description, 'Version B', 'the edited header is used, not a cached one');
  const result = await curl(server, ['-XPOST', `${server.url}/racy?bbbb=1`]);
  const { events } = parseSse(result.stdout);
  assert.equal(doneRecord(events).status, 'succeeded', result.stdout);
});

test('a script removed while the server runs is gone at once', async () => {
  const file = join(server.scriptsDir, 'temporary.sh');
  await writeFile(file, '#!/bin/sh\necho here\n');
  await chmod(file, 0o755);
  assert.equal((await fetchText(server, '/temporary')).status, 200);
  await rm(file);
  assertJsonError(await fetchText(server, '/temporary', { method: 'POST' }), 404);
});

async function refusesToStart(scripts: Record<string, string>, extra?: (scriptsDir: string) => Promise<void>): Promise<Error> {
  const root = await mkdtemp(join(tmpdir(), 'armhook-reserved-'));
  try {
    if (extra) {
      await mkdir(join(root, 'scripts'), { recursive: true });
      await extra(join(root, 'scripts'));
    }
    let started: TestServer | undefined;
    try {
      started = await startServer({ root, scripts });
    } catch (err) {
      return err as Error;
    }
    await started.close();
    assert.fail('the server started although a script shadows a reserved name');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

test('start-up refuses scripts/jobs.sh, naming it', async () => {
  const err = await refusesToStart({ 'jobs.sh': '#!/bin/sh\necho x\n', 'fine.sh': '#!/bin/sh\n' });
  assert.match(err.message, /jobs\.sh/);
  assert.match(err.message, /reserved|shadow/i);
});

test('start-up refuses a scripts/azure/ directory, naming it', async () => {
  const err = await refusesToStart({ 'azure/whoami.sh': '#!/bin/sh\necho x\n' });
  assert.match(err.message, /azure/);
});

test('start-up refuses every reserved top-level name', async () => {
  for (const name of ['healthz.sh', 'readyz', 'metrics.py', 'hooks.sh', 'openapi.json', 'jobs/list.sh', 'ui.sh', 'ui/run.sh']) {
    const err = await refusesToStart({ [name]: '#!/bin/sh\necho x\n' });
    assert.match(err.message, new RegExp(name.split(/[./]/)[0] ?? name), `${name}: ${err.message}`);
  }
});
