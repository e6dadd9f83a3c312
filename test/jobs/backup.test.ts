// armhook backup <file> while the server streams a large job and finishes others: the copy is
// consistent (integrity_check ok), holds every job that had ended before it started, and the
// stream goes on undisturbed.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { fetchText, startServer } from '../helpers/server.ts';
import { EventStream, startAsync, waitDone } from './helpers.ts';

test('armhook backup while jobs stream: a checked, consistent copy; the stream is not disturbed', async (t) => {
  const server = await startServer({
    scripts: { 'big.sh': '#!/bin/sh\nseq 1 800000\n', 'quick.sh': '#!/bin/sh\necho "quick $n"\n' },
    config: { workers: 4 },
  });
  t.after(() => server.close());
  const ended: string[] = [];
  for (let n = 0; n < 20; n++) ended.push(await startAsync(server, `/quick?n=${n}`));
  for (const id of ended) await waitDone(server, id);

  const stream = await EventStream.open(server, '/big', { method: 'POST' });
  await stream.until((e) => e.length > 1000, 'the big job streaming');
  const file = join(server.root, 'copy.db');
  const backup = runCli(['backup', file, '--data-dir', server.dataDir]);
  // More jobs end while the copy is taken.
  const during = await Promise.all(Array.from({ length: 8 }, (_, n) => startAsync(server, `/quick?n=during-${n}`)));
  const result = await backup.exit;
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^wrote .*copy\.db: \d+ jobs, integrity ok/);

  const events = await stream.until((e) => e.some((x) => x.event === 'done'), 'the big job done');
  assert.equal(JSON.parse(events.at(-1)?.data ?? '{}').status, 'succeeded');
  assert.equal(stream.lines.length, 800000, 'every line reached the live reader');
  for (const id of during) await waitDone(server, id);

  const copy = new DatabaseSync(file, { readOnly: true });
  t.after(() => copy.close());
  assert.equal(copy.prepare('PRAGMA integrity_check').get()?.integrity_check, 'ok');
  const ids = new Set(
    copy
      .prepare('SELECT id FROM jobs')
      .all()
      .map((row) => String(row.id)),
  );
  for (const id of ended) assert.ok(ids.has(id), `${id}, ended before the backup, is in the copy`);
  assert.ok(ids.has(stream.jobId), 'the job running during the backup is in the copy');
  const quick = ended[0] ?? '';
  const stored = copy
    .prepare('SELECT data FROM events WHERE job = (SELECT seq FROM jobs WHERE id = ?) ORDER BY last')
    .all(quick)
    .map((row) => String(row.data));
  assert.deepEqual(stored.slice(1, -1), ['quick 0'], 'with its output');
  assert.equal((await fetchText(server, '/healthz')).status, 200);
});

test('armhook backup: no database there is a clear error, and a bad usage line', async () => {
  const missing = await runCli(['backup', '/tmp/never.db', '--data-dir', '/nonexistent-armhook-dir']).exit;
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no job database at \/nonexistent-armhook-dir\/armhook\.db; check ARMHOOK_DATA_DIR/);
  const usage = await runCli(['backup']).exit;
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /usage: armhook backup <file>/);
});
