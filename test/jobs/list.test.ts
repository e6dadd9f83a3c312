// GET /jobs (newest first, filters hook/status/caller, paging with `next`), GET
// /jobs/<id> errors, and retention by count that never deletes a running job.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gateLine, release } from '../helpers/process.ts';
import { fetchText, open, startServer, type TestServer } from '../helpers/server.ts';
import { getJob, pollFinal, startAsync, waitDone, type JobRecord } from './helpers.ts';

let server: TestServer;
let pwDir: string;
const ALICE = 'alice:alice-pw';
const BOB = 'bob:bob-pw';
/** Ids in the order they were created. */
const created: Array<{ id: string; hook: string; caller: string; status: string }> = [];

type Page = { items: JobRecord[]; next: string | null };

async function page(path: string, auth = ALICE): Promise<Page> {
  const res = await fetchText(server, path, { auth });
  assert.equal(res.status, 200, `${path}: ${res.body}`);
  return res.json<Page>();
}

/** Follows `next` links from `path` to the end (bounded), returning every page. */
async function allPages(path: string, auth = ALICE): Promise<Page[]> {
  const pages: Page[] = [];
  let next: string | null = path;
  for (let i = 0; next !== null && i < 100; i++) {
    const p: Page = await page(next, auth);
    pages.push(p);
    next = p.next;
  }
  assert.equal(next, null, 'paging ends');
  return pages;
}

async function run(hook: string, auth: string): Promise<void> {
  const res = await fetchText(server, `/${hook}`, { method: 'POST', auth, headers: { Accept: 'application/json' } });
  const body = res.json<JobRecord>();
  created.push({ id: body.id, hook, caller: auth.split(':')[0] ?? '', status: body.status });
}

before(async () => {
  pwDir = await mkdtemp(join(tmpdir(), 'armhook-jobs-pw-'));
  const file = join(pwDir, 'htpasswd');
  execFileSync('htpasswd', ['-cbB', file, 'alice', 'alice-pw'], { stdio: 'ignore' });
  execFileSync('htpasswd', ['-bB', file, 'bob', 'bob-pw'], { stdio: 'ignore' });
  server = await startServer({
    config: { htpasswd: file },
    scripts: {
      'ok.sh': '#!/bin/sh\necho ok\n',
      'fail.sh': '#!/bin/sh\necho failing >&2\nexit 3\n',
      'deploy/app.sh': '#!/bin/sh\necho deployed\n',
    },
  });
  for (const [hook, auth] of [
    ['ok', ALICE],
    ['fail', BOB],
    ['fail', ALICE],
    ['ok', BOB],
    ['ok', ALICE],
    ['deploy/app', BOB],
    ['fail', ALICE],
  ] as const)
    await run(hook, auth);
});
after(async () => {
  await server.close();
  await rm(pwDir, { recursive: true, force: true });
});

test('GET /jobs lists every job newest first, with the record shape', async () => {
  const { items, next } = await page('/jobs');
  assert.equal(next, null);
  assert.deepEqual(
    items.map((r) => r.id),
    created.map((c) => c.id).reverse(),
    'newest first',
  );
  const sorted = [...items.map((r) => r.id)].sort().reverse();
  assert.deepEqual(
    items.map((r) => r.id),
    sorted,
    'ids sort by time',
  );
  for (const record of items) {
    const mine = created.find((c) => c.id === record.id);
    assert.equal(record.hook, mine?.hook);
    assert.equal(record.caller, mine?.caller);
    assert.equal(record.status, mine?.hook === 'fail' ? 'failed' : 'succeeded');
  }
  assert.equal(items.find((r) => r.hook === 'fail')?.exitCode, 3);
});

test('GET /jobs filters by hook (with or without a leading slash), status and caller, alone and combined', async () => {
  const ids = (items: JobRecord[]): string[] => items.map((r) => r.id);
  const expect = (pred: (c: (typeof created)[number]) => boolean): string[] =>
    created
      .filter(pred)
      .map((c) => c.id)
      .reverse();
  assert.deepEqual(
    ids((await page('/jobs?hook=ok')).items),
    expect((c) => c.hook === 'ok'),
  );
  assert.deepEqual(
    ids((await page('/jobs?hook=%2Fok')).items),
    expect((c) => c.hook === 'ok'),
  );
  assert.deepEqual(
    ids((await page('/jobs?hook=deploy%2Fapp')).items),
    expect((c) => c.hook === 'deploy/app'),
  );
  assert.deepEqual(
    ids((await page('/jobs?status=failed')).items),
    expect((c) => c.hook === 'fail'),
  );
  assert.deepEqual(
    ids((await page('/jobs?status=succeeded')).items),
    expect((c) => c.hook !== 'fail'),
  );
  assert.deepEqual(
    ids((await page('/jobs?caller=alice')).items),
    expect((c) => c.caller === 'alice'),
  );
  assert.deepEqual(
    ids((await page('/jobs?caller=bob', BOB)).items),
    expect((c) => c.caller === 'bob'),
  );
  assert.deepEqual(
    ids((await page('/jobs?hook=ok&caller=bob')).items),
    expect((c) => c.hook === 'ok' && c.caller === 'bob'),
  );
  assert.deepEqual(
    ids((await page('/jobs?hook=fail&status=failed&caller=alice')).items),
    expect((c) => c.hook === 'fail' && c.caller === 'alice'),
  );
  assert.deepEqual(await page('/jobs?hook=nothing-here'), { items: [], next: null });
  assert.deepEqual(await page('/jobs?status=running'), { items: [], next: null });
});

test('paging: limit + next walk all jobs newest first, with no duplicates and no gaps; next keeps the filters', async () => {
  const full = (await page('/jobs')).items.map((r) => r.id);
  for (const limit of [1, 2, 3, 7, 8]) {
    const pages = await allPages(`/jobs?limit=${limit}`);
    for (const p of pages) assert.ok(p.items.length <= limit);
    assert.ok(
      pages.slice(0, -1).every((p) => p.items.length === limit),
      'every page but the last is full',
    );
    assert.deepEqual(
      pages.flatMap((p) => p.items.map((r) => r.id)),
      full,
      `limit=${limit}: the pages together are the whole list`,
    );
    assert.equal(pages.at(-1)?.next, null);
  }
  const alicePages = await allPages('/jobs?caller=alice&limit=1');
  assert.equal(alicePages.length, 4);
  assert.deepEqual(
    alicePages.flatMap((p) => p.items.map((r) => r.id)),
    created
      .filter((c) => c.caller === 'alice')
      .map((c) => c.id)
      .reverse(),
  );
  for (const p of alicePages) if (p.next) assert.match(p.next, /caller=alice/);
});

test('paging stays stable while new jobs arrive: no duplicates, no gaps', async () => {
  const before = (await page('/jobs')).items.map((r) => r.id);
  const first = await page('/jobs?limit=3');
  await run('ok', ALICE);
  await run('ok', BOB);
  const rest = first.next ? await allPages(first.next) : [];
  const walked = [...first.items, ...rest.flatMap((p) => p.items)].map((r) => r.id);
  assert.deepEqual(walked, before, 'the walk that started before the new jobs sees exactly the jobs that existed then');
  const now = (await page('/jobs')).items.map((r) => r.id);
  assert.deepEqual(now.slice(2), before);
});

test('bad filters and paging values are 400 JSON', async () => {
  for (const query of ['status=bogus', 'status=', 'limit=0', 'limit=-1', 'limit=abc', 'limit=501', 'limit=2.5', 'after=not-an-id']) {
    const res = await fetchText(server, `/jobs?${query}`, { auth: ALICE });
    assert.equal(res.status, 400, `${query}: ${res.status} ${res.body}`);
    const body = res.json<{ error: string; message: string }>();
    assert.equal(typeof body.error, 'string');
    assert.ok(body.message.length > 0);
  }
});

test('an unknown (misspelled) filter is 400, not silently ignored', async () => {
  for (const query of ['stauts=failed', 'state=failed', 'user=alice']) {
    const res = await fetchText(server, `/jobs?${query}`, { auth: ALICE });
    assert.equal(res.status, 400, `${query} would otherwise return every job: ${res.status} ${res.body.slice(0, 200)}`);
  }
});

test('an unknown job id is 404 JSON on every job route', async () => {
  for (const id of ['01ARZ3NDEKTSV4RRFFQ69G5FAV', 'nope', '..%2F..%2Fetc%2Fpasswd']) {
    for (const suffix of ['', '/log', '/events']) {
      const res = await fetchText(server, `/jobs/${id}${suffix}`, { auth: ALICE });
      assert.equal(res.status, 404, `/jobs/${id}${suffix}: ${res.body}`);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.equal(res.json().error, 'unknown_job');
    }
  }
});

test('job routes need authentication like everything else', async () => {
  const id = created[0]?.id ?? '';
  for (const path of ['/jobs', `/jobs/${id}`, `/jobs/${id}/log`, `/jobs/${id}/events`]) {
    const res = await fetchText(server, path);
    assert.equal(res.status, 401, path);
  }
  assert.equal((await fetchText(server, `/jobs/${id}`, { method: 'DELETE' })).status, 401);
});

// ---- retention ----

/** The ids the job database holds (what a restart would load), read by a second connection. */
function storedIds(dataDir: string): string[] {
  const db = new DatabaseSync(join(dataDir, 'armhook.db'), { readOnly: true });
  try {
    return db
      .prepare('SELECT id FROM jobs ORDER BY id')
      .all()
      .map((row) => String(row.id));
  } finally {
    db.close();
  }
}

test('retention by count (retentionMax 3): after 5 finished jobs only the 3 newest remain, records and files; a running job is never deleted', async (t) => {
  const local = await startServer({
    config: { retentionMax: 3, workers: 2 },
    scripts: { 'quick.sh': '#!/bin/sh\necho quick\n', 'hold.sh': `#!/bin/sh\n${gateLine('go-hold')}\necho held\n` },
  });
  t.after(() => local.close());
  const held = await startAsync(local, '/hold');
  const finished: string[] = [];
  for (let i = 0; i < 5; i++) {
    const id = await startAsync(local, '/quick');
    assert.equal((await waitDone(local, id)).status, 'succeeded');
    finished.push(id);
  }
  const kept = finished.slice(-3);
  const listed = (await fetchText(local, '/jobs')).json<Page>().items.map((r) => r.id);
  assert.deepEqual(listed, [...kept].reverse().concat(held), 'the 3 newest finished jobs and the running one');
  for (const gone of finished.slice(0, 2)) assert.equal((await fetchText(local, `/jobs/${gone}`)).status, 404);
  assert.equal((await getJob(local, held)).status, 'running', 'the running job (the oldest of all) is kept');
  assert.deepEqual(storedIds(local.dataDir), [...kept, held].sort(), 'deleted jobs are gone from the database, the others kept');

  await release(local.markerDir, 'go-hold');
  assert.equal((await waitDone(local, held)).status, 'succeeded');
});

test('retention by count does not delete a job the moment it finishes (a long job that started before newer short ones)', async (t) => {
  const local = await startServer({
    config: { retentionMax: 3, workers: 2 },
    scripts: { 'quick.sh': '#!/bin/sh\necho quick\n', 'hold.sh': `#!/bin/sh\n${gateLine('go-hold')}\necho held\n` },
  });
  t.after(() => local.close());
  const held = await startAsync(local, '/hold');
  for (let i = 0; i < 3; i++) await waitDone(local, await startAsync(local, '/quick'));
  await release(local.markerDir, 'go-hold');
  const done = await waitDone(local, held);
  assert.equal(done.status, 'succeeded');
  // A caller that polled this job while it ran now asks for its result.
  const res = await fetchText(local, `/jobs/${held}`);
  assert.equal(res.status, 200, `the job that just ended is still there for the caller waiting on it (got ${res.status} ${res.body})`);
  assert.equal(res.json().status, 'succeeded');
});

test('retention applies at start too: a restart with a lower retentionMax keeps only the newest', async (t) => {
  const first = await startServer({ scripts: { 'quick.sh': '#!/bin/sh\necho quick\n' } });
  const root = first.root;
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const id = await startAsync(first, '/quick');
    await waitDone(first, id);
    ids.push(id);
  }
  await first.armhook.close();
  const second = await startServer({ root, config: { retentionMax: 2 } });
  const listed = (await fetchText(second, '/jobs')).json<Page>().items.map((r) => r.id);
  assert.deepEqual(listed, ids.slice(-2).reverse());
  assert.deepEqual(storedIds(second.dataDir), ids.slice(-2).sort());
  await second.armhook.close();

  // Deleted stays deleted: a later start that would keep more brings nothing back.
  const third = await startServer({ root, config: { retentionMax: 10 } });
  t.after(async () => {
    await third.close();
    await rm(root, { recursive: true, force: true });
  });
  assert.deepEqual(
    (await fetchText(third, '/jobs')).json<Page>().items.map((r) => r.id),
    ids.slice(-2).reverse(),
  );
  for (const id of ids.slice(-2)) assert.match((await fetchText(third, `/jobs/${id}/log`)).body, /^quick\narmhook: job \w+ succeeded/);
  for (const id of ids.slice(0, 2)) assert.equal((await fetchText(third, `/jobs/${id}/log`)).status, 404);
});

test('retention keeps a job while a reader replays it, then deletes it: the reader gets the whole job and its done event', async (t) => {
  const local = await startServer({
    config: { retentionMax: 1 },
    scripts: { 'big.sh': '#!/bin/sh\nseq 1 600000\n', 'quick.sh': '#!/bin/sh\necho quick\n' },
  });
  t.after(() => local.close());
  const id = await startAsync(local, '/big');
  assert.equal((await pollFinal(local, id)).status, 'succeeded');
  // ~15 MB of SSE: the reader pauses early, so most of it is still to be read from the store.
  const res = await open(local, `/jobs/${id}/events`);
  t.after(() => res.destroy());
  res.pause();
  const newer = await startAsync(local, '/quick');
  await waitDone(local, newer);
  assert.equal((await fetchText(local, `/jobs/${id}`)).status, 200, 'the job being read is kept past retentionMax');

  let lines = 0;
  let done = false;
  let partial = '';
  res.setEncoding('utf8');
  for await (const chunk of res) {
    const parts = (partial + (chunk as string)).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (/^data: \d+$/.test(line)) lines++;
      if (line === 'event: done') done = true;
    }
  }
  assert.equal(lines, 600000, 'every line reached the reader');
  assert.ok(done, 'the stream ends with done, not cut off silently');
  // The next job to end runs retention again: the job nobody reads any more goes.
  await waitDone(local, await startAsync(local, '/quick'));
  assert.equal((await fetchText(local, `/jobs/${id}`)).status, 404, 'deleted once its reader finished');
  const errors = local.logs.entries().filter((e) => e.level >= 50);
  assert.deepEqual(
    errors.map((e) => e.msg),
    [],
    'no error logged for it',
  );
});
