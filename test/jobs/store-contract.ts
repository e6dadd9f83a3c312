// What every JobStore must do, as tests any implementation runs: call storeContract() with a
// factory from its own test file (sqlite-store.test.ts does for the SQLite store).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobEvent, JobFilter, JobRecord, JobStore } from '../../server/jobs/index.ts';

export interface StoreFactory {
  /** A store on a fresh, empty place. */
  create(): Promise<JobStore>;
  /** A second store on the same place as `store`, after `store` was closed (what a restart opens). */
  reopen(store: JobStore): Promise<JobStore>;
  /** Removes what `create` made. */
  cleanup(store: JobStore): Promise<void>;
}

let serial = 0;

/** A record with a valid, increasing id (ULID alphabet), so newest-first order is checkable. */
export function newRecord(fields: Partial<JobRecord> = {}): JobRecord {
  const id = `01JAAAAAAAAAAAAAAAAAA${String(++serial).padStart(5, '0')}`;
  return {
    id,
    hook: 'demo/echo',
    kind: 'script',
    method: 'POST',
    status: 'running',
    exitCode: null,
    createdAt: new Date().toISOString(),
    startedAt: new Date().toISOString(),
    endedAt: null,
    durationMs: null,
    caller: 'alice',
    params: {},
    result: null,
    error: null,
    pgid: null,
    ...fields,
  };
}

function events(first: number, type: JobEvent['event'], datas: string[], at = 1_700_000_000_000): JobEvent[] {
  return datas.map((data, i) => ({ id: first + i, event: type, data, at }));
}

/** Ends a job the way the manager does: final record, then `done` carrying it. */
export async function finishJob(store: JobStore, record: JobRecord, lastId: number, fields: Partial<JobRecord> = {}): Promise<JobRecord> {
  const final: JobRecord = { ...record, status: 'succeeded', exitCode: 0, endedAt: new Date().toISOString(), durationMs: 1, ...fields };
  await store.finish(final, { id: lastId + 1, event: 'done', data: JSON.stringify({ jobId: final.id, ...final }), at: Date.now() });
  return final;
}

/** Every job `list` gives for `filter`, page by page (`size` each) through `next`, which names each page's last job. */
async function walkPages(store: JobStore, filter: JobFilter, size: number): Promise<string[]> {
  const walked: string[] = [];
  let after: string | undefined;
  for (let page = 0; page < 100; page++) {
    const { items, next } = await store.list(filter, size, after);
    walked.push(...items.map((r) => r.id));
    if (!next) return walked;
    assert.equal(next, items.at(-1)?.id);
    after = next;
  }
  throw new Error('paging did not end');
}

async function readAll(store: JobStore, id: string, afterId = 0, max = 3): Promise<JobEvent[]> {
  const all: JobEvent[] = [];
  for (let batch = await store.events(id, afterId, max); batch.length > 0; batch = await store.events(id, all.at(-1)?.id ?? afterId, max)) {
    assert.ok(batch.length <= max + 1000, 'a batch is bounded');
    all.push(...batch);
  }
  return all;
}

export function storeContract(name: string, factory: StoreFactory): void {
  const withStore = (title: string, fn: (store: JobStore) => Promise<void>): void => {
    test(`${name}: ${title}`, async () => {
      const store = await factory.create();
      try {
        await fn(store);
      } finally {
        await factory.cleanup(store);
      }
    });
  };

  withStore('a created job reads back: record and first events, committed when create resolves (a restart sees them)', async (store) => {
    const record = newRecord({ params: { pw: '***' } });
    await store.create(record, events(1, 'job', ['{"status":"running"}']));
    assert.deepEqual(await store.get(record.id), record);
    const again = await factory.reopen(store);
    assert.deepEqual(await again.get(record.id), record);
    assert.deepEqual(await again.events(record.id, 0, 10), events(1, 'job', ['{"status":"running"}']));
    assert.equal(await again.lastEventId(record.id), 1);
    assert.equal(await again.get('01JAAAAAAAAAAAAAAAAAAZZZZZ'), undefined, 'an unknown id');
    await factory.cleanup(again);
  });

  withStore('events read back in order after any id, also inside a run of lines stored together, in bounded batches', async (store) => {
    const record = newRecord();
    await store.create(record, events(1, 'job', ['{}']));
    await store.append(record.id, [...events(2, 'stdout', ['a', '', 'c ü']), ...events(5, 'stderr', ['e1', 'e2'])]);
    await store.append(record.id, events(7, 'progress', ['{"step":1}']));
    await store.append(
      record.id,
      events(
        8,
        'stdout',
        Array.from({ length: 50 }, (_, i) => `line ${i}`),
      ),
    );
    const all = await readAll(store, record.id);
    assert.deepEqual(
      all.map((e) => e.id),
      Array.from({ length: 57 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      all.slice(1, 4).map((e) => e.data),
      ['a', '', 'c ü'],
    );
    assert.deepEqual(
      all.slice(4, 6).map((e) => [e.event, e.data]),
      [
        ['stderr', 'e1'],
        ['stderr', 'e2'],
      ],
    );
    for (const after of [0, 2, 3, 6, 7, 30, 56]) {
      const batch = await store.events(record.id, after, 5);
      assert.equal(batch[0]?.id, after + 1, `the first event after ${after}`);
      assert.ok(batch.length >= 1, 'at least one event when there are any');
    }
    assert.deepEqual(await store.events(record.id, 57, 5), [], 'nothing after the last');
    assert.equal(await store.lastEventId(record.id), 57);
  });

  withStore('first events: several, read in batches smaller than them and after any of them, then the output after them', async (store) => {
    const record = newRecord();
    const first = [...events(1, 'job', ['{}']), ...events(2, 'progress', ['{"queued":2}', '{"queued":1}'])];
    await store.create(record, first);
    assert.equal(await store.lastEventId(record.id), 3, 'only first events so far');
    assert.deepEqual(await store.events(record.id, 0, 2), first.slice(0, 2));
    assert.deepEqual(await store.events(record.id, 2, 10), first.slice(2));
    await store.append(record.id, events(4, 'stdout', ['out']));
    assert.deepEqual(
      (await store.events(record.id, 1, 10)).map((e) => e.id),
      [2, 3, 4],
    );
    assert.deepEqual(await readAll(store, record.id, 0, 1), [...first, ...events(4, 'stdout', ['out'])]);
    assert.equal(await store.lastEventId(record.id), 4);
    const bare = newRecord();
    await store.create(bare, []);
    assert.deepEqual(await store.events(bare.id, 0, 10), [], 'a job created without events has none');
    assert.equal(await store.lastEventId(bare.id), 0);
  });

  withStore('update and finish: the stored record follows; done is the last event; unfinished lists only queued and running jobs', async (store) => {
    const queued = newRecord({ status: 'queued', startedAt: null });
    const running = newRecord();
    const ended = newRecord();
    for (const r of [queued, running, ended]) await store.create(r, events(1, 'job', ['{}']));
    await store.update({ ...running, pgid: 4242 });
    assert.equal((await store.get(running.id))?.pgid, 4242);
    const final = await finishJob(store, ended, 1, { status: 'failed', exitCode: 3, error: { code: 'exit_code', message: 'exit 3' } });
    assert.deepEqual(await store.get(ended.id), final);
    const last = (await store.events(ended.id, 1, 10)).at(-1);
    assert.equal(last?.event, 'done');
    assert.deepEqual(JSON.parse(last?.data ?? '{}'), { jobId: final.id, ...final });
    const again = await factory.reopen(store);
    assert.deepEqual(
      (await again.unfinished()).map((r) => [r.id, r.status, r.pgid]),
      [
        [queued.id, 'queued', null],
        [running.id, 'running', 4242],
      ],
    );
    await factory.cleanup(again);
  });

  withStore('list: newest first, filters by hook, status and caller (alone and together), pages with next without gaps', async (store) => {
    const made: JobRecord[] = [];
    for (let i = 0; i < 7; i++) {
      const record = newRecord({ hook: i % 2 ? 'vm/create' : 'demo/echo', caller: i % 3 ? 'alice' : 'bob' });
      await store.create(record, events(1, 'job', ['{}']));
      made.push(i < 4 ? await finishJob(store, record, 1) : record);
    }
    const ids = (rs: JobRecord[]): string[] => rs.map((r) => r.id);
    const newest = [...made].reverse();
    assert.deepEqual(ids((await store.list({}, 100)).items), ids(newest));
    assert.deepEqual(ids((await store.list({ hook: 'vm/create' }, 100)).items), ids(newest.filter((r) => r.hook === 'vm/create')));
    assert.deepEqual(ids((await store.list({ status: 'running' }, 100)).items), ids(newest.filter((r) => r.status === 'running')));
    assert.deepEqual(
      ids((await store.list({ caller: 'bob', hook: 'demo/echo' }, 100)).items),
      ids(newest.filter((r) => r.caller === 'bob' && r.hook === 'demo/echo')),
    );
    assert.deepEqual(await walkPages(store, {}, 3), ids(newest));
    assert.deepEqual(await store.list({ status: 'cancelled' }, 10), { items: [], next: null });
  });

  withStore('list: live and ended jobs interleaved by age come out newest first, filtered and paged across both', async (store) => {
    const made: JobRecord[] = [];
    for (let i = 0; i < 9; i++) {
      const record = newRecord({ hook: i % 2 ? 'vm/create' : 'demo/echo' });
      await store.create(record, events(1, 'job', ['{}']));
      made.push(record);
    }
    // Every third job is still running (the oldest among them too); the rest ended, failed or not.
    const now: JobRecord[] = [];
    for (const [i, record] of made.entries()) now.push(i % 3 === 0 ? record : await finishJob(store, record, 1, { status: i % 2 ? 'failed' : 'succeeded' }));
    const newest = [...now].reverse();
    const ids = (rs: JobRecord[]): string[] => rs.map((r) => r.id);
    for (const size of [1, 2, 4, 100]) assert.deepEqual(await walkPages(store, {}, size), ids(newest), `pages of ${size}`);
    assert.deepEqual(await walkPages(store, { hook: 'demo/echo' }, 2), ids(newest.filter((r) => r.hook === 'demo/echo')));
    assert.deepEqual(await walkPages(store, { status: 'running' }, 2), ids(newest.filter((r) => r.status === 'running')));
    assert.deepEqual(
      await walkPages(store, { status: 'failed', hook: 'vm/create' }, 1),
      ids(newest.filter((r) => r.status === 'failed' && r.hook === 'vm/create')),
    );
    assert.equal((await store.list({}, 3, newest[2]?.id)).items[0]?.id, newest[3]?.id, 'after a live job, the next older one whatever its state');
  });

  withStore('prune by count, age and size deletes the jobs that ended first, never a running one nor one being read', async (store) => {
    const running = newRecord();
    await store.create(running, events(1, 'job', ['{}']));
    const ended: string[] = [];
    for (let i = 0; i < 6; i++) {
      const record = newRecord();
      await store.create(record, events(1, 'job', ['{}']));
      await store.append(record.id, events(2, 'stdout', ['x'.repeat(1000)]));
      await finishJob(store, record, 2, { endedAt: new Date(Date.UTC(2026, 0, 1 + i)).toISOString() });
      ended.push(record.id);
    }
    const kept = async (): Promise<string[]> => (await store.list({}, 100)).items.map((r) => r.id).sort();
    const never = { endedBefore: Number.NEGATIVE_INFINITY, maxJobs: 1000, maxBytes: 0 };
    assert.equal(await store.prune(never), 0);
    // Count: 5 kept; the oldest is being read, so it stays (and the next oldest is not taken instead).
    assert.equal(await store.prune({ ...never, maxJobs: 5 }, new Set([ended[0] ?? ''])), 0);
    assert.equal(await store.prune({ ...never, maxJobs: 5 }), 1);
    assert.deepEqual(await kept(), [running.id, ...ended.slice(1)].sort());
    assert.deepEqual(await store.events(ended[0] ?? '', 0, 10), [], 'its events are gone too');
    // Age: what ended before 3 January.
    assert.equal(await store.prune({ ...never, endedBefore: Date.UTC(2026, 0, 3) }), 1);
    assert.deepEqual(await kept(), [running.id, ...ended.slice(2)].sort());
    // Size: about 1.4 KB each (output and the final record); keep at most 3 KB.
    assert.equal(await store.prune({ ...never, maxBytes: 3000 }), 2);
    assert.deepEqual(await kept(), [running.id, ...ended.slice(4)].sort());
    assert.equal(await store.prune({ endedBefore: Date.now() + 1000, maxJobs: 1, maxBytes: 1 }), 2);
    assert.deepEqual(await kept(), [running.id], 'a running job is never deleted');
    const again = await factory.reopen(store);
    assert.deepEqual(
      (await again.list({}, 100)).items.map((r) => r.id),
      [running.id],
      'deleted stays deleted after a restart',
    );
    await factory.cleanup(again);
  });
  withStore(
    'age retention finds a job that ended before every job the store has seen end (a clock set back), and one that ends after a prune',
    async (store) => {
      const finishAt = async (endedAt: string): Promise<string> => {
        const record = newRecord();
        await store.create(record, events(1, 'job', ['{}']));
        await finishJob(store, record, 1, { endedAt });
        return record.id;
      };
      const policy = { endedBefore: Date.UTC(2026, 0, 10), maxJobs: 1000, maxBytes: 0 };
      const recent = await finishAt('2026-01-20T00:00:00.000Z');
      assert.equal(await store.prune(policy), 0, 'nothing ended before 10 January');
      const early = await finishAt('2026-01-01T00:00:00.000Z');
      assert.equal(await store.prune(policy), 1);
      assert.equal(await store.get(early), undefined, 'the job that ended on 1 January is deleted');
      const later = await finishAt('2026-01-02T00:00:00.000Z');
      assert.equal(await store.prune(policy), 1, 'a job that ended after the prune is found too');
      assert.deepEqual(
        (await store.list({}, 10)).items.map((r) => r.id),
        [recent],
        `only the job that ended on 20 January is left (${later} was deleted)`,
      );
    },
  );
  withStore(
    'an idempotency key is stored with its job (same commit), found per caller and key within the window, after a restart, and not once the job is deleted',
    async (store) => {
      const record = newRecord({ caller: 'alice' });
      const claim = { caller: 'alice', key: 'deploy-42', fingerprint: 'fp-1' };
      const since = Date.now() - 60_000;
      await store.create(record, events(1, 'job', ['{}']), claim);
      assert.deepEqual(await store.idempotent('alice', 'deploy-42', since), { jobId: record.id, fingerprint: 'fp-1' });
      assert.equal(await store.idempotent('bob', 'deploy-42', since), undefined, 'keys are per caller');
      assert.equal(await store.idempotent('alice', 'deploy-43', since), undefined);
      assert.equal(await store.idempotent('alice', 'deploy-42', Date.now() + 60_000), undefined, 'older than the window');
      await finishJob(store, record, 1);
      const again = await factory.reopen(store);
      assert.deepEqual(await again.idempotent('alice', 'deploy-42', since), { jobId: record.id, fingerprint: 'fp-1' }, 'kept across a restart');
      assert.equal(await again.prune({ endedBefore: Date.now() + 1000, maxJobs: 1000, maxBytes: 0 }), 1);
      assert.equal(await again.idempotent('alice', 'deploy-42', since), undefined, 'a deleted job is not an answer');
      await factory.cleanup(again);
    },
  );
  withStore("a key whose job retention deleted never leads to a later job, not even one that took the deleted job's place in the store", async (store) => {
    const since = Date.now() - 60_000;
    const long = newRecord({ caller: 'bob' });
    await store.create(long, events(1, 'job', ['{}']));
    const keyed = newRecord({ caller: 'alice' });
    await store.create(keyed, events(1, 'job', ['{}']), { caller: 'alice', key: 'deploy-7', fingerprint: 'fp-alice' });
    await finishJob(store, keyed, 1, { endedAt: '2026-01-01T00:00:00.000Z' });
    await finishJob(store, long, 1, { endedAt: '2026-01-02T00:00:00.000Z' });
    // Age retention deletes the newest job created (the keyed one); the next job is created after it.
    assert.equal(await store.prune({ endedBefore: Date.UTC(2026, 0, 1, 12), maxJobs: 1000, maxBytes: 0 }), 1);
    const next = newRecord({ caller: 'bob' });
    await store.create(next, events(1, 'job', ['{}']));
    assert.equal(await store.idempotent('alice', 'deploy-7', since), undefined, "alice's key must not lead to bob's job");
    await factory.cleanup(store);
  });
}
