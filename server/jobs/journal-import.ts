import { existsSync } from 'node:fs';
import { readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { SqliteJobStore } from './sqlite-store.ts';
import type { JobEvent, JobRecord } from './types.ts';

const SEGMENT = /^journal-\d{12}\.ndjson$/;
const OWN_FILE = /^([0-9A-HJKMNP-TV-Z]{26})\.ndjson$/;

/**
 * Imports a data dir written by the journal format (the release before the SQLite store) at
 * first start: every job, its record and its events, then moves `<dataDir>/jobs` aside to
 * `jobs.imported-<time>`. Each job is one transaction and jobs already in the database are
 * skipped, so an import that a crash interrupted simply runs again. Returns how many jobs it imported.
 *
 * The format: segments `jobs/journal-<n>.ndjson` of frames — a header `{"job":"<id>","bytes":N}`
 * and N bytes of that job's lines, or `{"job":"<id>","bytes":0,"deleted":true}` (deleted by
 * retention) — and `jobs/<id>.ndjson` for a job that outgrew the journal (all of its lines; its
 * frames left in a segment are stale). A job's lines are `{"record":…}` (the last one wins) and
 * events `{"id":n,"event":…,"data":…,"at":…}` or runs `{"id":n,"event":…,"lines":[…],"at":…}`;
 * the last event, `done`, carries the final record. A line torn by a crash is skipped.
 */
export async function importJournal(dataDir: string, store: SqliteJobStore, log: Logger): Promise<number> {
  const dir = join(dataDir, 'jobs');
  if (!existsSync(dir)) return 0;
  const names = (await readdir(dir)).sort();
  const texts = await jobTexts(dir, names);
  let imported = 0;
  for (const [id, text] of texts) {
    const job = parseJob(text);
    if (!job) {
      log.warn({ jobId: id, dir }, 'a job in the old journal has no readable record; not imported (its bytes stay in the moved-aside directory)');
      continue;
    }
    await store.importJob(job.record, job.events);
    imported++;
  }
  const aside = `${dir}.imported-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  await rename(dir, aside);
  log.info(
    { jobs: imported, from: aside, to: store.file },
    'imported the jobs of the old journal format into the job database; the old files were moved aside (delete them once the import looks right)',
  );
  return imported;
}

/** Each kept job's bytes: its own file when it has one, else its frames in segment order. */
async function jobTexts(dir: string, names: string[]): Promise<Map<string, string>> {
  const frames = new Map<string, Buffer[]>();
  for (const name of names.filter((n) => SEGMENT.test(n))) {
    const content = await readFile(join(dir, name));
    for (let at = 0; at < content.length;) {
      const newline = content.indexOf(10, at);
      if (newline === -1) break;
      let header: { job?: unknown; bytes?: unknown; deleted?: unknown };
      try {
        header = JSON.parse(content.toString('utf8', at, newline)) as typeof header;
      } catch {
        break; // a frame header torn by a crash: the segment ends here
      }
      const start = newline + 1;
      if (typeof header.job !== 'string' || typeof header.bytes !== 'number' || start + header.bytes > content.length) break;
      if (header.deleted === true) frames.delete(header.job);
      else frames.set(header.job, [...(frames.get(header.job) ?? []), content.subarray(start, start + header.bytes)]);
      at = start + header.bytes;
    }
  }
  const texts = new Map<string, string>();
  for (const [id, parts] of frames) texts.set(id, Buffer.concat(parts).toString('utf8'));
  for (const name of names) {
    const id = OWN_FILE.exec(name)?.[1];
    if (id) texts.set(id, await readFile(join(dir, name), 'utf8'));
  }
  return texts;
}

function parseJob(text: string): { record: JobRecord; events: JobEvent[] } | undefined {
  let record: JobRecord | undefined;
  const events: JobEvent[] = [];
  for (const line of text.split('\n')) {
    let parsed: { record?: JobRecord; id?: number; event?: JobEvent['event']; data?: string; lines?: string[]; at?: number };
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      continue; // empty, or torn by a crash
    }
    if (parsed.record) {
      record = parsed.record;
      continue;
    }
    const { id, event, at } = parsed;
    if (typeof id !== 'number' || typeof event !== 'string' || typeof at !== 'number' || id <= (events.at(-1)?.id ?? 0)) continue;
    const datas = Array.isArray(parsed.lines) ? parsed.lines : [parsed.data ?? ''];
    datas.forEach((data, k) => events.push({ id: id + k, event, data, at }));
    if (event === 'done') {
      const { jobId: _jobId, ...final } = JSON.parse(parsed.data ?? '{}') as JobRecord & { jobId: string };
      record = final;
    }
  }
  return record ? { record, events } : undefined;
}
