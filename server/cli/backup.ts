import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { backup, DatabaseSync } from 'node:sqlite';
import type { Config } from '../config/index.ts';
import { DATABASE_FILE } from '../jobs/index.ts';

/**
 * `armhook backup <file>`: a consistent copy of the job database, also while the server runs
 * (SQLite's online backup reads a snapshot; the server keeps writing). The copy is written under
 * a temporary name, checked (integrity_check), then renamed to <file>.
 */
export async function backupJobs(config: Config, positionals: string[]): Promise<number> {
  const [target, ...rest] = positionals;
  if (!target || rest.length > 0) {
    process.stderr.write('usage: armhook backup <file> [settings]\n');
    return 2;
  }
  const source = join(config.dataDir, DATABASE_FILE);
  if (!existsSync(source)) {
    process.stderr.write(`armhook backup: no job database at ${source}; check ARMHOOK_DATA_DIR (or --data-dir)\n`);
    return 1;
  }
  const destination = resolve(target);
  const temporary = `${destination}.partial`;
  const db = new DatabaseSync(source, { readOnly: true, timeout: 5000 });
  try {
    await rm(temporary, { force: true });
    // 256 pages (1 MiB) a step: the server's writes go on between steps.
    await backup(db, temporary, { rate: 256 });
  } catch (err) {
    await rm(temporary, { force: true });
    process.stderr.write(`armhook backup: could not copy ${source}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    db.close();
  }
  const copy = new DatabaseSync(temporary, { readOnly: true });
  let jobs: number;
  try {
    const check = copy
      .prepare('PRAGMA integrity_check')
      .all()
      .map((row) => String(row.integrity_check));
    if (check.join() !== 'ok') {
      process.stderr.write(`armhook backup: the copy failed its integrity check (${check.slice(0, 3).join('; ')}); ${temporary} is kept for inspection\n`);
      return 1;
    }
    jobs = Number(copy.prepare('SELECT count(*) AS n FROM jobs').get()?.n ?? 0);
  } finally {
    copy.close();
  }
  await rename(temporary, destination);
  process.stdout.write(
    `wrote ${destination}: ${jobs} jobs, integrity ok. To restore: stop armhook, copy it to ${source} (remove ${source}-wal), start armhook\n`,
  );
  return 0;
}
