// A data dir of the previous release (the journal format) under a real server: imported at
// start, the job that was running when that release died is interrupted with its output, and
// everything reads over HTTP as before.
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fetchText, startServer } from '../helpers/server.ts';
import type { JobRecord } from './helpers.ts';

test('the server imports a journal-format data dir at first start and serves its jobs; the interrupted one reads interrupted, with its output', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'armhook-import-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await cp(join(import.meta.dirname, '..', 'fixtures', 'journal-datadir'), join(root, 'data'), { recursive: true });
  const server = await startServer({ root });
  t.after(() => server.close());
  assert.ok(
    server.logs.entries().some((e) => /imported the jobs of the old journal format/.test(e.msg) && e.jobs === 6),
    'a log line says what was imported',
  );
  const items = (await fetchText(server, '/jobs')).json<{ items: JobRecord[] }>().items;
  assert.equal(items.length, 6);
  const long = items.find((r) => r.hook === 'demo/long');
  assert.equal(long?.status, 'interrupted');
  assert.equal(long?.error?.code, 'interrupted');
  assert.equal(
    (await fetchText(server, `/jobs/${long?.id}/log`)).body,
    `started\nhalf way\narmhook: job ${long?.id} interrupted (no exit code): ${long?.error?.message}\n`,
  );
  const big = items.find((r) => r.hook === 'demo/big');
  const log = (await fetchText(server, `/jobs/${big?.id}/log`)).body.split('\n');
  assert.equal(log.length, 3402, '3400 lines, the status line, and the final newline');
  const events = (await fetchText(server, `/jobs/${items.find((r) => r.hook === 'vm/create')?.id}/events`)).body;
  assert.match(events, /event: stderr\ndata: warning: slow\n/);
  assert.match(events, /event: done\ndata: \{"jobId":"\w+","id":"\w+","hook":"vm\/create"[^\n]*"status":"succeeded"/);
});
