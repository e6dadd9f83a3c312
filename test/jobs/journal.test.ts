// The job store on disk: the shared journal (segments of frames), the move of large jobs to a
// file of their own, deletion marks, torn frames after a crash, readers that outlive deletion.
// Real files in a temp dir; small segment and move sizes so a few jobs exercise every path.
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { JobStore, type JobEvent, type JobLog, type JobRecord } from '../../server/jobs/index.ts';
import { captureLog } from '../helpers/log.ts';

const SEGMENT_BYTES = 2048;
const MOVE_AT = 8192;

let serial = 0;
function record(status: JobRecord['status'] = 'running'): JobRecord {
  // Valid, increasing ids (ULID alphabet) so "newest first" is checkable.
  const id = `01JAAAAAAAAAAAAAAAAAAA${String(++serial).padStart(4, '0')}`;
  return { id, hook: 'demo/echo', kind: 'script', method: 'POST', status, exitCode: null, createdAt: new Date().toISOString(), startedAt: null, endedAt: null, durationMs: null, caller: 'alice', params: {}, result: null, error: null, pgid: null };
}

async function withDir(fn: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'armhook-journal-'));
  try {
    await fn(dataDir);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** A store on dataDir with small sizes; call loadAll() before use (it returns what it found). */
function newStore(dataDir: string): JobStore {
  return new JobStore({ dataDir, log: captureLog().log, segmentBytes: SEGMENT_BYTES, moveAt: MOVE_AT });
}

function openStore(dataDir: string): JobStore {
  const store = newStore(dataDir);
  store.loadAll();
  return store;
}

/** A finished job with `lines` stdout lines; returns its id. */
function finishedJob(store: JobStore, lines: string[]): string {
  const r = record();
  const log = store.create(r);
  for (const line of lines) log.append([{ event: 'stdout', data: line }]);
  const final = { ...r, status: 'succeeded' as const, exitCode: 0 };
  log.append([{ event: 'done', data: JSON.stringify({ jobId: r.id, ...final }) }]);
  log.end();
  return r.id;
}

async function readAll(log: JobLog, afterId = 0): Promise<JobEvent[]> {
  const reader = log.reader(afterId);
  const events: JobEvent[] = [];
  try {
    for (let batch = await reader.next(); batch; batch = await reader.next()) {
      if (batch.length === 0) throw new Error('a finished log returned an empty batch');
      events.push(...batch);
    }
  } finally {
    await reader.close();
  }
  return events;
}

const stdout = (events: JobEvent[]): string[] => events.filter((e) => e.event === 'stdout').map((e) => e.data);
const segments = async (dataDir: string): Promise<string[]> => (await readdir(join(dataDir, 'jobs'))).filter((n) => n.startsWith('journal-')).sort();

test('small jobs live in the journal: read back in order, and a restart loads the same records and output', async () => {
  await withDir(async (dataDir) => {
    const store = openStore(dataDir);
    const ids = [finishedJob(store, ['one', 'two']), finishedJob(store, ['three']), finishedJob(store, [])];
    assert.deepEqual(stdout(await readAll(await store.openLog(ids[0] ?? ''))), ['one', 'two']);
    const files = await readdir(join(dataDir, 'jobs'));
    assert.ok(files.every((n) => n.startsWith('journal-')), `no file per job: ${files.join(', ')}`);
    store.close();

    const again = newStore(dataDir);
    const records = again.loadAll();
    assert.deepEqual(records.map((r) => r.id), [...ids].reverse(), 'newest first');
    assert.ok(records.every((r) => r.status === 'succeeded'), 'the done event is the final record');
    const events = await readAll(await again.openLog(ids[1] ?? ''));
    assert.deepEqual(stdout(events), ['three']);
    assert.deepEqual(events.map((e) => e.id), [1, 2], 'event ids as appended');
    again.close();
  });
});

test('segments roll over; a segment with nothing kept goes (oldest first), and deleted jobs stay deleted after a restart', async () => {
  await withDir(async (dataDir) => {
    const store = openStore(dataDir);
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(finishedJob(store, [`job ${i} ${'x'.repeat(200)}`]));
    const before = await segments(dataDir);
    assert.ok(before.length >= 3, `several segments of ${SEGMENT_BYTES} bytes: ${before.join(', ')}`);
    for (const id of ids.slice(0, 8)) store.remove(id);
    const after = await segments(dataDir);
    assert.ok(after.length < before.length, `emptied segments were deleted: ${before.length} → ${after.length}`);
    assert.equal(after[0] === before[0], false, 'the oldest segment went first');
    store.close();

    const again = newStore(dataDir);
    assert.deepEqual(again.loadAll().map((r) => r.id), ids.slice(8).reverse(), 'only the kept jobs come back');
    assert.deepEqual(stdout(await readAll(await again.openLog(ids[9] ?? ''))), [`job 9 ${'x'.repeat(200)}`]);
    again.close();
  });
});

test('a job past the move size moves to its own file; a reader that started in the journal reads every line once, across the move and a restart', async () => {
  await withDir(async (dataDir) => {
    const store = openStore(dataDir);
    const r = record();
    const log = store.create(r);
    const reader = log.reader(0);
    const seen: JobEvent[] = [];
    log.append([{ event: 'stdout', data: 'first' }]);
    seen.push(...((await reader.next()) ?? []));
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i} ${'y'.repeat(80)}`);
    for (const line of lines) log.append([{ event: 'stdout', data: line }]);
    const files = await readdir(join(dataDir, 'jobs'));
    assert.ok(files.includes(`${r.id}.ndjson`), `moved to its own file: ${files.join(', ')}`);
    assert.equal(log.journalSpans, undefined, 'no longer in the journal');
    log.append([{ event: 'done', data: JSON.stringify({ jobId: r.id, ...r, status: 'succeeded' }) }]);
    log.end();
    for (let batch = await reader.next(); batch; batch = await reader.next()) seen.push(...batch);
    await reader.close();
    assert.deepEqual(stdout(seen), ['first', ...lines]);
    assert.deepEqual(seen.map((e) => e.id), Array.from({ length: 202 }, (_, i) => i + 1), 'no event twice, none missing');
    store.close();

    const again = newStore(dataDir);
    assert.deepEqual(again.loadAll().map((x) => [x.id, x.status]), [[r.id, 'succeeded']], 'loaded once, from its file');
    assert.deepEqual(stdout(await readAll(await again.openLog(r.id))), ['first', ...lines]);
    again.remove(r.id);
    again.close();
    const third = newStore(dataDir);
    assert.deepEqual(third.loadAll(), [], 'a deleted moved job does not come back from its old frames');
    third.close();
  });
});

test('a torn last frame (a crash mid-write) is ignored; a half-done move is undone; the rest loads', async () => {
  await withDir(async (dataDir) => {
    const store = openStore(dataDir);
    const kept = finishedJob(store, ['kept']);
    store.close();
    const last = (await segments(dataDir)).at(-1) ?? '';
    await appendFile(join(dataDir, 'jobs', last), '{"job":"01JAAAAAAAAAAAAAAAAAAAZZZZ","bytes":500}\n{"record":{"id":"01JAAAA');
    await writeFile(join(dataDir, 'jobs', `${kept}.ndjson.tmp`), '{"record":');
    const again = newStore(dataDir);
    assert.deepEqual(again.loadAll().map((r) => r.id), [kept]);
    assert.deepEqual(stdout(await readAll(await again.openLog(kept))), ['kept']);
    assert.ok(!(await readdir(join(dataDir, 'jobs'))).some((n) => n.endsWith('.tmp')), 'the leftover temp file is removed');
    again.close();
  });
});

test('a reader that started before retention deleted the job (and its segment) still reads it to the end', async () => {
  await withDir(async (dataDir) => {
    const store = openStore(dataDir);
    const lines = Array.from({ length: 40 }, (_, i) => `old ${i} ${'z'.repeat(30)}`);
    const id = finishedJob(store, lines);
    const log = await store.openLog(id);
    const reader = log.reader(0);
    const first = (await reader.next(5)) ?? [];
    const segmentsBefore = await segments(dataDir);
    store.remove(id);
    for (let i = 0; i < 10; i++) store.remove(finishedJob(store, ['x'.repeat(300)]));
    assert.ok(!(await segments(dataDir)).includes(segmentsBefore[0] ?? ''), 'its segment was deleted meanwhile');
    const rest: JobEvent[] = [];
    for (let batch = await reader.next(); batch; batch = await reader.next()) rest.push(...batch);
    await reader.close();
    assert.deepEqual(stdout([...first, ...rest]), lines);
    store.close();
  });
});

test('a job a restart finds unfinished is reopened and its end appended after its output', async () => {
  await withDir(async (dataDir) => {
    const store = openStore(dataDir);
    const r = record();
    const log = store.create(r);
    log.append([{ event: 'stdout', data: 'before the crash' }]);
    store.close(); // no end(): the process died

    const again = newStore(dataDir);
    assert.deepEqual(again.loadAll().map((x) => x.status), ['running']);
    const reopened = await again.reopen(r.id);
    assert.equal(reopened.lastId, 1);
    reopened.append([{ event: 'done', data: JSON.stringify({ jobId: r.id, ...r, status: 'interrupted' }) }]);
    reopened.end();
    const events = await readAll(await again.openLog(r.id));
    assert.deepEqual(events.map((e) => [e.id, e.event]), [[1, 'stdout'], [2, 'done']]);
    again.close();
    const third = newStore(dataDir);
    assert.deepEqual(third.loadAll().map((x) => x.status), ['interrupted']);
    third.close();
  });
});

test('a reader lagging behind a job that moves reads every event once, though later segments were deleted meanwhile', async () => {
  await withDir(async (dataDir) => {
    const store = openStore(dataDir);
    const r = record();
    const log = store.create(r);
    log.append([{ event: 'stdout', data: 'first' }]);
    const reader = log.reader(0);
    const seen: JobEvent[] = [...((await reader.next()) ?? [])];
    // Other jobs come and go between this job's lines: segments roll and are reclaimed.
    for (let i = 0; i < 120; i++) {
      store.remove(finishedJob(store, [`other ${i} ${'o'.repeat(100)}`]));
      log.append([{ event: 'stdout', data: `mine ${i} ${'m'.repeat(60)}` }]);
    }
    assert.equal(log.journalSpans, undefined, 'the job moved to its own file');
    log.append([{ event: 'done', data: JSON.stringify({ jobId: r.id, ...r, status: 'succeeded' }) }]);
    log.end();
    for (let batch = await reader.next(); batch; batch = await reader.next()) seen.push(...batch);
    await reader.close();
    assert.deepEqual(seen.map((e) => e.id), Array.from({ length: 122 }, (_, i) => i + 1), 'every id once, in order');
    assert.ok(stdout(seen).every((line) => line === 'first' || line.startsWith('mine ')), 'nothing of another job');
    store.close();
  });
});

test('an unfinished job that moves while a restart appends its end is read back whole, and stays deleted once removed', async () => {
  await withDir(async (dataDir) => {
    const store = openStore(dataDir);
    const r = record();
    const log = store.create(r);
    for (let i = 0; i < 40; i++) log.append([{ event: 'stdout', data: `before ${i} ${'b'.repeat(100)}` }]);
    assert.ok(log.journalSpans, 'still in the journal');
    store.close(); // the process died

    const again = newStore(dataDir);
    again.loadAll();
    const reopened = await again.reopen(r.id);
    reopened.append([{ event: 'stderr', data: 'x'.repeat(MOVE_AT) }]);
    reopened.append([{ event: 'done', data: JSON.stringify({ jobId: r.id, ...r, status: 'interrupted' }) }]);
    reopened.end();
    assert.equal(reopened.journalSpans, undefined, 'moved while its end was appended');
    const events = await readAll(await again.openLog(r.id));
    assert.equal(events.length, 42);
    again.remove(r.id);
    assert.ok(!(await readdir(join(dataDir, 'jobs'))).includes(`${r.id}.ndjson`), 'its own file is deleted');
    again.close();
    const third = newStore(dataDir);
    assert.deepEqual(third.loadAll(), []);
    third.close();
  });
});

test('a job file whose last line is longer than the read window still gives the job\'s record at start', async () => {
  await withDir(async (dataDir) => {
    const store = openStore(dataDir);
    const r = record();
    const log = store.create(r);
    // One chunk of many lines is one stored line: ~200 KB, past the move size and the 64 KiB window.
    log.append(Array.from({ length: 2000 }, (_, i) => ({ event: 'stdout' as const, data: `line ${i} ${'w'.repeat(90)}` })));
    assert.equal(log.journalSpans, undefined, 'in its own file');
    store.close(); // no end: a crash
    const again = newStore(dataDir);
    assert.deepEqual(again.loadAll().map((x) => [x.id, x.status]), [[r.id, 'running']]);
    again.close();
  });
});
