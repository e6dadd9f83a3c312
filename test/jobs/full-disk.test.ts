// A full disk, for real: the data dir on a 2 MiB tmpfs (mounted here; the suite runs as root)
// filled by another file. A run that cannot be recorded is refused with 507 and nothing runs; a
// job whose output stops fitting ends failed with storage_full and keeps what was stored, its
// stream and its replay agreeing event for event; the server serves meanwhile and recovers once
// space is freed; the database stays intact.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { access, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { markerLine } from '../helpers/process.ts';
import { fetchText, parseSse, startServer } from '../helpers/server.ts';
import { EventStream, type JobRecord } from './helpers.ts';

/** Writes `file` until the file system has at most `leave` bytes free (ENOSPC ends it early). */
async function fill(dir: string, file: string, leave: number): Promise<void> {
  const handle = await open(join(dir, file), 'a');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) {
      const { bavail, bsize } = statfsSync(dir);
      if (bavail * bsize <= leave) return;
      await handle.write(chunk, 0, Math.min(chunk.length, bavail * bsize - leave));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

test('full disk: 507 for a run that cannot be recorded, storage_full for a running job, service meanwhile, recovery once space is back, database intact', async (t) => {
  const mnt = await mkdtemp(join(tmpdir(), 'armhook-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mnt]);
  t.after(async () => {
    execFileSync('umount', ['-l', mnt]);
    await rm(mnt, { recursive: true, force: true });
  });
  const server = await startServer({
    config: { dataDir: mnt },
    scripts: {
      'echo.sh': `#!/bin/sh\n${markerLine('echo-ran')}\necho hello\n`,
      'big.sh': '#!/bin/sh\nseq 1 1000000 | sed "s/$/ some output to fill the disk with/"\n',
    },
  });
  let closed = false;
  t.after(() => (closed ? undefined : server.close()));
  assert.equal((await fetchText(server, '/echo', { method: 'POST', headers: { Accept: 'application/json' } })).status, 200);
  await rm(join(server.markerDir, 'echo-ran'));

  // 1. No room at all: the write-ahead log is emptied (as a checkpoint does), the rest filled.
  const db = new DatabaseSync(join(mnt, 'armhook.db'));
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  db.close();
  await fill(mnt, 'filler', 0);
  const refused = await fetchText(server, '/echo', { method: 'POST', headers: { Accept: 'application/json' } });
  assert.equal(refused.status, 507, refused.body);
  assert.equal(refused.json<{ error: string }>().error, 'storage_full');
  assert.match(refused.json<{ message: string }>().message, /nothing was run/);
  assert.equal(refused.headers['armhook-job-id'], undefined, 'no job id is told');
  assert.equal(await exists(join(server.markerDir, 'echo-ran')), false, 'the script did not run');
  assert.equal((await fetchText(server, '/healthz')).status, 200, 'the server keeps serving');
  assert.equal((await fetchText(server, '/jobs')).status, 200, 'and reading jobs');

  // 2. Some room, not enough: a job printing ~50 MB stops when its output no longer fits.
  await rm(join(mnt, 'filler'));
  await fill(mnt, 'filler', 768 * 1024);
  const stream = await EventStream.open(server, '/big', { method: 'POST' });
  assert.equal(stream.status, 200, stream.text);
  const id = stream.jobId;
  const events = await stream.until((e) => e.some((x) => x.event === 'done'), 'done');
  const done = JSON.parse(events.at(-1)?.data ?? '{}') as JobRecord;
  assert.equal(done.status, 'failed');
  assert.equal(done.error?.code, 'storage_full', JSON.stringify(done.error));
  events.forEach((e, i) => assert.equal(Number(e.id), i + 1, 'the live stream skipped no event'));
  const lines = events.filter((e) => e.event === 'message');
  assert.ok(lines.length > 0 && lines.length < 1_000_000, `some output was stored before the disk filled (${lines.length} lines)`);
  assert.equal((await fetchText(server, `/jobs/${id}`)).json<JobRecord>().error?.code, 'storage_full', 'the record says so, even before it could be stored');
  assert.ok(
    server.logs.entries().some((e) => e.level >= 50 && /disk holding ARMHOOK_DATA_DIR is full/.test(e.msg)),
    'an error line says what to do',
  );

  // 3. Space is back: the final record is stored by itself, new runs work, the replay equals the live stream.
  await rm(join(mnt, 'filler'));
  // Stored at once if the last write still fitted, else by the retry every few seconds.
  const storedStatus = (): unknown => {
    const reader = new DatabaseSync(join(mnt, 'armhook.db'), { readOnly: true });
    try {
      return reader.prepare('SELECT status FROM jobs WHERE id = ?').get(id)?.status;
    } finally {
      reader.close();
    }
  };
  for (let i = 0; i < 300 && storedStatus() !== 'failed'; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(storedStatus(), 'failed', 'the final record is in the database once space is back');
  const ran = await fetchText(server, '/echo', { method: 'POST', headers: { Accept: 'application/json' } });
  assert.equal(ran.status, 200, ran.body);
  assert.equal(ran.json<{ output: string }>().output, 'hello\n');
  const replay = parseSse((await fetchText(server, `/jobs/${id}/events`)).body).events;
  assert.deepEqual(
    replay.map((e) => [e.id, e.event, e.data]),
    events.map((e) => [e.id, e.event, e.data]),
    'the replay shows exactly what the live stream showed',
  );

  await server.close();
  closed = true;
  const check = new DatabaseSync(join(mnt, 'armhook.db'), { readOnly: true });
  t.after(() => check.close());
  assert.equal(check.prepare('PRAGMA integrity_check').get()?.integrity_check, 'ok');
});
