// kill -9 while 16 clients dispatch jobs as fast as they can, three times over the same data dir:
// every job id a caller received is there after the restart (ended: succeeded, or interrupted
// with its output), and the database passes PRAGMA integrity_check after each kill.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { removeRoot, startServerProcess, type ServerProcess } from '../helpers/process.ts';
import { fetchText } from '../helpers/server.ts';
import { FINAL, type JobRecord } from './helpers.ts';

const ROUNDS = 3;
const CLIENTS = 16;
const ENV = { ARMHOOK_WORKERS: '16', ARMHOOK_QUEUE: '64', ARMHOOK_RETENTION_MAX: '100000' };
const SCRIPTS = { 'echo.sh': '#!/bin/sh\necho "hello $n"\necho "bye $n"\n' };

function integrity(dataDir: string): string {
  const db = new DatabaseSync(join(dataDir, 'armhook.db'));
  try {
    return db
      .prepare('PRAGMA integrity_check')
      .all()
      .map((row) => String(row.integrity_check))
      .join('; ');
  } finally {
    db.close();
  }
}

/** Clients that start jobs (Prefer: respond-async) until the server dies, recording every id they are told. */
function dispatch(server: ServerProcess, received: Set<string>): Promise<unknown> {
  return Promise.allSettled(
    Array.from({ length: CLIENTS }, async (_, client) => {
      for (let n = 0; ; n++) {
        const res = await fetchText(server, `/echo?n=${client}-${n}`, { method: 'POST', headers: { Prefer: 'respond-async' } });
        if (res.status === 202) received.add(res.json<{ id: string }>().id);
        else if (res.status !== 429) throw new Error(`unexpected ${res.status} ${res.body}`);
      }
    }),
  );
}

test('kill -9 under 16-way dispatch, three times: every id a caller received is there after the restart, none left running, integrity_check ok', async (t) => {
  let server = await startServerProcess({ scripts: SCRIPTS, env: ENV });
  const root = server.root;
  t.after(async () => {
    await server.kill();
    await removeRoot(root);
  });
  const received = new Set<string>();
  for (let round = 0; round < ROUNDS; round++) {
    const before = received.size;
    const clients = dispatch(server, received);
    // Kill at a different point each round, once this round's callers have been told some ids.
    const target = before + 40 + round * 53;
    for (let i = 0; i < 3000 && received.size < target; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(received.size >= target, `round ${round}: callers received ${received.size - before} ids`);
    const exit = await server.kill();
    assert.equal(exit.signal, 'SIGKILL');
    await clients;
    assert.equal(integrity(server.dataDir), 'ok', `round ${round}: the database after kill -9`);

    server = await startServerProcess({ root, env: ENV });
    for (const id of received) {
      const res = await fetchText(server, `/jobs/${id}`);
      assert.equal(res.status, 200, `round ${round}: job ${id}, whose id a caller received, is there`);
      const record = res.json<JobRecord>();
      assert.ok(FINAL.includes(record.status), `${id} ended (${record.status})`);
      if (record.status === 'interrupted') assert.equal(record.error?.code, 'interrupted');
      else assert.equal(record.status, 'succeeded');
    }
  }
  const listed = (await fetchText(server, '/jobs?limit=500')).json<{ items: JobRecord[] }>().items;
  assert.ok(
    listed.every((r) => FINAL.includes(r.status)),
    'nothing is left queued or running',
  );
  await server.kill();
  assert.equal(integrity(server.dataDir), 'ok');
});
