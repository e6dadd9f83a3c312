// The SQLite job store: the shared store contract, then what is particular to the file —
// schema and settings, damage found at start-up, the file giving space back, import of the
// journal format.
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { Checkpointer } from '../../server/jobs/checkpointer.ts';
import { DamagedStoreError, importJournal, SqliteJobStore, type JobStore } from '../../server/jobs/index.ts';
import { captureLog } from '../helpers/log.ts';
import { finishJob, newRecord, storeContract } from './store-contract.ts';

const dirs = new Map<JobStore, string>();

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'armhook-store-'));
}

storeContract('sqlite', {
  async create() {
    const dir = await tempDir();
    const store = new SqliteJobStore({ dataDir: dir });
    dirs.set(store, dir);
    return store;
  },
  async reopen(store) {
    const dir = dirs.get(store) ?? '';
    await store.close();
    const again = new SqliteJobStore({ dataDir: dir });
    dirs.set(again, dir);
    return again;
  },
  async cleanup(store) {
    await store.close();
    const dir = dirs.get(store);
    dirs.delete(store);
    if (dir && ![...dirs.values()].includes(dir)) await rm(dir, { recursive: true, force: true });
  },
});

test('sqlite: one file in WAL mode, incremental vacuum, schema version 3 (jobs and events, idempotency keys, keys indexed by job)', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new SqliteJobStore({ dataDir: dir });
  await store.close();
  const db = new DatabaseSync(join(dir, 'armhook.db'), { readOnly: true });
  t.after(() => db.close());
  assert.equal(db.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal');
  assert.equal(db.prepare('PRAGMA auto_vacuum').get()?.auto_vacuum, 2, 'incremental');
  assert.equal(db.prepare('PRAGMA user_version').get()?.user_version, 3);
  const plan = db
    .prepare("EXPLAIN QUERY PLAN SELECT record FROM jobs WHERE caller = 'x' ORDER BY id DESC LIMIT 5")
    .all()
    .map((r) => String(r.detail))
    .join('; ');
  assert.match(plan, /USING INDEX jobs_by_caller/, 'filters are served by an index');
  const keysPlan = db
    .prepare('EXPLAIN QUERY PLAN DELETE FROM idempotency_keys WHERE job = 1')
    .all()
    .map((r) => String(r.detail))
    .join('; ');
  assert.match(keysPlan, /USING (COVERING )?INDEX idempotency_keys_by_job/, "retention finds a job's keys by an index");
});

test('sqlite: retention by count deletes in batches: up to 1/64 over the limit waits, then it goes back down to the limit, oldest first', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new SqliteJobStore({ dataDir: dir });
  t.after(() => store.close());
  const policy = { endedBefore: Number.NEGATIVE_INFINITY, maxJobs: 128, maxBytes: 0 };
  const ended: string[] = [];
  for (let i = 0; i < 130; i++) {
    const record = newRecord();
    await store.create(record, []);
    await finishJob(store, record, 0);
    ended.push(record.id);
  }
  assert.equal(await store.prune(policy), 0, '130 finished, limit 128 + 2: nothing yet');
  const record = newRecord();
  await store.create(record, []);
  await finishJob(store, record, 0);
  ended.push(record.id);
  assert.equal(await store.prune(policy), 3, 'one over the slack: back down to the limit');
  const kept = (await store.list({}, 200)).items.map((r) => r.id).sort();
  assert.deepEqual(kept, ended.slice(3), 'the three that ended first went');
});

test("sqlite: a running job's record change (process group) is committed with its next output, at the latest before that output is readable elsewhere", async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new SqliteJobStore({ dataDir: dir });
  t.after(() => store.close());
  const record = newRecord();
  await store.create(record, []);
  const updated = store.update({ ...record, pgid: 4242 });
  await new Promise((resolve) => setImmediate(resolve));
  await store.append(record.id, [{ id: 1, event: 'stdout', data: 'hello', at: Date.now() }]);
  const other = new DatabaseSync(join(dir, 'armhook.db'), { readOnly: true });
  t.after(() => other.close());
  const row = other.prepare('SELECT record, (SELECT count(*) FROM events) AS events FROM jobs').get();
  assert.equal(row?.events, 1);
  assert.equal(JSON.parse(String(row?.record)).pgid, 4242, "the output's commit carried the process group");
  await updated;
  // Alone (a job printing nothing), the change still gets its own commit.
  await store.update({ ...record, pgid: 4343 });
  assert.equal(JSON.parse(String(other.prepare('SELECT record FROM jobs').get()?.record)).pgid, 4343);
});

test('sqlite: a database from a newer armhook (higher schema version) is refused, not touched', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  await new SqliteJobStore({ dataDir: dir }).close();
  const db = new DatabaseSync(join(dir, 'armhook.db'));
  db.exec('PRAGMA user_version = 99');
  db.close();
  assert.throws(() => new SqliteJobStore({ dataDir: dir }), /schema version 99, newer than this armhook knows/);
});

test('sqlite: damage is found at start-up (quick_check) and reported with what to do; nothing is rewritten', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new SqliteJobStore({ dataDir: dir });
  for (let i = 0; i < 40; i++) {
    const record = newRecord();
    await store.create(record, [{ id: 1, event: 'stdout', data: `job ${i} ${'x'.repeat(3000)}`, at: 1 }]);
    await finishJob(store, record, 1);
  }
  await store.close();
  const file = join(dir, 'armhook.db');
  // Zero 4 KiB in the middle of the file (a page of the jobs or events tree).
  const size = (await stat(file)).size;
  const { open } = await import('node:fs/promises');
  const handle = await open(file, 'r+');
  await handle.write(Buffer.alloc(4096), 0, 4096, Math.floor(size / 4096 / 2) * 4096);
  await handle.close();
  const before = (await stat(file)).mtimeMs;
  assert.throws(
    () => new SqliteJobStore({ dataDir: dir }),
    (err: unknown) => err instanceof DamagedStoreError && /is damaged/.test(err.message) && /armhook backup/.test(err.message) && err.message.includes(file),
  );
  assert.equal((await stat(file)).mtimeMs, before, 'the damaged file is left as it was');

  await writeFile(file, 'not a database at all, but long enough to have a header '.repeat(100));
  assert.throws(() => new SqliteJobStore({ dataDir: dir }), DamagedStoreError, 'a file that is not a database');
});

test('sqlite: retention gives the space back to the file system (incremental vacuum)', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new SqliteJobStore({ dataDir: dir });
  t.after(() => store.close());
  const chunk = Array.from({ length: 800 }, (_, i) => `line ${i} ${'y'.repeat(72)}`);
  for (let j = 0; j < 8; j++) {
    const record = newRecord();
    await store.create(record, []);
    for (let i = 0; i < 40; i++)
      await store.append(
        record.id,
        chunk.map((data, k) => ({ id: i * 800 + k + 1, event: 'stdout' as const, data, at: 1 })),
      );
    await finishJob(store, record, 32_000);
  }
  const db = store.db;
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  const full = (await stat(join(dir, 'armhook.db'))).size;
  assert.ok(full > 16_000_000, `eight jobs of ~2.5 MB (${full} bytes)`);
  assert.equal(await store.prune({ endedBefore: Number.NEGATIVE_INFINITY, maxJobs: 1, maxBytes: 0 }), 7);
  // The vacuum runs in steps after the commit, down to 2,048 free pages (8 MiB) kept for new jobs; wait for it (bounded).
  for (let i = 0; i < 500 && Number(db.prepare('PRAGMA freelist_count').get()?.freelist_count) > 2048; i++)
    await new Promise((resolve) => setImmediate(resolve));
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  const after = (await stat(join(dir, 'armhook.db'))).size;
  assert.ok(after < full - 8_000_000, `the file shrank from ${full} to ${after} bytes`);
  assert.ok(Number(db.prepare('PRAGMA freelist_count').get()?.freelist_count) <= 2048, 'what is left free is kept for new jobs');
});

test('import: a data dir of the journal format (previous release) is imported at first start, then moved aside; a second import adds nothing', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  await cp(join(import.meta.dirname, '..', 'fixtures', 'journal-datadir'), dir, { recursive: true });
  const { log, entries } = captureLog();
  const store = new SqliteJobStore({ dataDir: dir });
  t.after(() => store.close());
  assert.equal(await importJournal(dir, store, log), 6);
  const line = entries().find((e) => /imported the jobs of the old journal format/.test(e.msg));
  assert.equal(line?.jobs, 6);
  const names = await readdir(dir);
  assert.ok(!names.includes('jobs'), 'the old directory is gone from its place');
  const aside = names.find((n) => n.startsWith('jobs.imported-'));
  assert.ok(aside, `moved aside: ${names.join(' ')}`);
  assert.ok((await readdir(join(dir, aside))).includes('journal-000000000001.ndjson'), 'with its files');

  const items = (await store.list({}, 100)).items;
  const byHook = new Map(items.map((r) => [r.hook, r]));
  assert.deepEqual(
    [...byHook.keys()].sort(),
    ['azure/groups', 'demo/big', 'demo/fail', 'demo/long', 'demo/sleep', 'vm/create'],
    'every kept job; the one retention deleted stays deleted',
  );
  assert.deepEqual([...byHook.values()].map((r) => [r.hook, r.status]).sort(), [
    ['azure/groups', 'succeeded'],
    ['demo/big', 'succeeded'],
    ['demo/fail', 'failed'],
    ['demo/long', 'running'],
    ['demo/sleep', 'cancelled'],
    ['vm/create', 'succeeded'],
  ]);
  const events = async (hook: string): Promise<Array<[string, string]>> => {
    const all = [];
    const id = byHook.get(hook)?.id ?? '';
    for (let batch = await store.events(id, 0, 500); batch.length > 0; batch = await store.events(id, all.at(-1)?.id ?? 0, 500)) all.push(...batch);
    assert.deepEqual(
      all.map((e) => e.id),
      all.map((_, i) => i + 1),
      `${hook}: ids 1, 2, 3, …`,
    );
    return all.map((e) => [e.event, e.data]);
  };
  const vm = await events('vm/create');
  assert.deepEqual(
    vm.filter(([e]) => e === 'stdout' || e === 'stderr'),
    [
      ['stdout', 'creating vm1'],
      ['stdout', 'rg=rg1'],
      ['stderr', 'warning: slow'],
      ['stdout', 'done'],
    ],
  );
  assert.equal(vm.at(-1)?.[0], 'done');
  assert.deepEqual(byHook.get('vm/create')?.params, { vmname: 'vm1', pw: '***' });
  const big = (await events('demo/big')).filter(([e]) => e === 'stdout');
  assert.equal(big.length, 3400, 'the job that had moved to a file of its own, whole');
  assert.equal(big[3399]?.[1], `line 003399 ${'x'.repeat(67)}`);
  const handler = await events('azure/groups');
  assert.deepEqual(
    handler.find(([e]) => e === 'progress'),
    ['progress', '{"step":"listing"}'],
  );
  assert.deepEqual(byHook.get('azure/groups')?.result, { groups: ['rg1', 'rg2'] });
  const long = await events('demo/long');
  assert.deepEqual(
    long.filter(([e]) => e === 'stdout').map(([, d]) => d),
    ['started', 'half way'],
    'the interrupted job keeps its output',
  );
  assert.equal(byHook.get('demo/long')?.pgid, 999999, 'with its process group, so leftovers can be ended');
  assert.equal(await store.lastEventId(byHook.get('demo/long')?.id ?? ''), long.length);

  // An import a crash interrupted runs again from the start: jobs already in the database are skipped.
  await cp(join(import.meta.dirname, '..', 'fixtures', 'journal-datadir'), dir, { recursive: true });
  assert.equal(await importJournal(dir, store, log), 6);
  assert.equal((await store.list({}, 100)).items.length, 6, 'no job twice');
  assert.equal((await events('demo/big')).length, big.length + 2, 'no event twice (job, stdout…, done)');
});

test('sqlite: checkpoints run on a thread of their own (none at start); a commit on the event loop checkpoints only past the 64 MiB backstop', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new SqliteJobStore({ dataDir: dir });
  assert.equal(store.db.prepare('PRAGMA wal_autocheckpoint').get()?.wal_autocheckpoint, 16384);
  assert.equal(store.checkpointer.running, false, 'an idle store holds no thread');
  const record = newRecord();
  await store.create(record, [{ id: 1, event: 'stdout', data: 'x'.repeat(100_000), at: Date.now() }]);
  await finishJob(store, record, 1);
  const wal = join(dir, 'armhook.db-wal');
  const before = (await stat(join(dir, 'armhook.db'))).size;
  assert.ok((await stat(wal)).size > 100_000, 'the commits are in the WAL');
  const report = await store.checkpointer.now();
  assert.ok('checkpointed' in report && report.checkpointed > 0, JSON.stringify(report));
  assert.ok((await stat(join(dir, 'armhook.db'))).size > before + 100_000, 'the thread copied them into the database file');
  await store.close();
  assert.deepEqual(
    (await readdir(dir)).filter((name) => name.startsWith('armhook.db')),
    ['armhook.db'],
    'closing stops the thread; the last connection removes the WAL',
  );
  const reopened = new SqliteJobStore({ dataDir: dir });
  t.after(() => reopened.close());
  assert.equal((await reopened.get(record.id))?.status, 'succeeded');
});

test('sqlite: one job streaming output starts no checkpoint thread, however many commits it makes; a burst of 64 jobs does', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new SqliteJobStore({ dataDir: dir });
  t.after(() => store.close());
  const streaming = newRecord();
  await store.create(streaming, []);
  for (let id = 1; id <= 200; id++) await store.append(streaming.id, [{ id, event: 'stdout', data: `line ${id}`, at: Date.now() }]);
  assert.equal(store.checkpointer.running, false, '200 commits of one job: the backstop is enough, no thread');
  for (let i = 0; i < 62; i++) await store.create(newRecord(), []);
  assert.equal(store.checkpointer.running, false, '63 jobs in all');
  await store.create(newRecord(), []);
  assert.equal(store.checkpointer.running, true, 'the 64th job starts the thread');
});

test('checkpointer: no thread while nothing is written; it starts after enough jobs and ends itself once the WAL is quiet', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const db = new DatabaseSync(join(dir, 'x.db'));
  t.after(() => db.close());
  db.exec('PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x)');
  const checkpointer = new Checkpointer({ file: join(dir, 'x.db'), intervalMs: 20, idleRuns: 3, startAfterJobs: 2 });
  t.after(() => checkpointer.stop());
  db.exec('INSERT INTO t VALUES (1)');
  checkpointer.jobStored();
  assert.equal(checkpointer.running, false, 'one job starts no thread');
  db.exec('INSERT INTO t VALUES (2)');
  checkpointer.jobStored();
  assert.equal(checkpointer.running, true, 'the second does');
  for (let i = 0; i < 500 && checkpointer.running; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(checkpointer.running, false, 'three quiet turns later the thread has ended');
  assert.equal(Number(db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get()?.checkpointed), Number(db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get()?.log));
  db.exec('INSERT INTO t VALUES (3)');
  checkpointer.jobStored();
  checkpointer.jobStored();
  assert.equal(checkpointer.running, true, 'writes start it again');
});

test('checkpointer: a thread that fails is not started again (the store keeps its own backstop)', async (t) => {
  const checkpointer = new Checkpointer({ file: join(tmpdir(), 'armhook-no-such-dir', 'x.db'), intervalMs: 20, idleRuns: 3, startAfterJobs: 1 });
  t.after(() => checkpointer.stop());
  checkpointer.jobStored();
  assert.equal(checkpointer.running, true);
  for (let i = 0; i < 500 && checkpointer.running; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(checkpointer.running, false, 'the thread could not open the database and ended');
  for (let i = 0; i < 5; i++) checkpointer.jobStored();
  assert.equal(checkpointer.running, false, 'later jobs do not start another');
});
