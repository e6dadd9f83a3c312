import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isJobId, JOB_STATUSES, type JobManager, type JobPage, type JobStatus } from '../jobs/index.ts';
import { AppError, quote } from '../errors.ts';
import { openStream, streamJob } from './stream.ts';

const PAGE_DEFAULT = 50;
const PAGE_MAX = 500;
const LIST_PARAMS = new Set(['hook', 'status', 'caller', 'limit', 'after']);

type ListQuery = { hook?: string; status?: string; caller?: string; limit?: string; after?: string };

export function registerJobRoutes(app: FastifyInstance, options: { jobs: JobManager; keepAliveMs: number }): void {
  const { jobs } = options;
  // A job the caller may not see (another caller's, under "own") is as unknown as a made-up id.
  const known = async (request: FastifyRequest<{ Params: { id: string } }>): Promise<void> => {
    const id = request.params.id;
    const record = isJobId(id) ? await jobs.get(id) : undefined;
    if (!record || !request.access.maySee(record.caller)) throw new AppError(404, 'unknown_job', `no job ${quote(id)}; GET /jobs lists jobs`);
  };

  app.get<{ Querystring: ListQuery }>('/jobs', async (request) => listJobs(jobs, request));

  app.get<{ Params: { id: string } }>('/jobs/:id', async (request) => {
    await known(request);
    return jobs.get(request.params.id);
  });

  // What the job has written so far (all of it once it ended), as plain text.
  app.get<{ Params: { id: string } }>('/jobs/:id/log', async (request, reply) => {
    await known(request);
    const log = await jobs.openLog(request.params.id);
    if (!log) throw new AppError(404, 'unknown_job', 'that job has no log');
    reply.hijack();
    reply.raw.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Armhook-Job-Id': request.params.id });
    await streamJob(reply.raw, log, {
      format: 'text',
      afterId: 0,
      keepAliveMs: options.keepAliveMs,
      snapshot: true,
      filter: (e) => e.event === 'stdout' || e.event === 'stderr' || e.event === 'done',
    });
  });

  // Replay from the start (or after Last-Event-ID), then follow until the job ends.
  app.get<{ Params: { id: string }; Querystring: { lastEventId?: string } }>('/jobs/:id/events', async (request, reply) => {
    await known(request);
    const raw = request.headers['last-event-id'] ?? request.query.lastEventId;
    const afterId = raw === undefined ? 0 : /^\d{1,15}$/.test(String(raw).trim()) ? Number(String(raw).trim()) : NaN;
    if (!Number.isSafeInteger(afterId)) throw new AppError(400, 'bad_last_event_id', 'Last-Event-ID must be an event id (a whole number) from this job');
    const log = await jobs.openLog(request.params.id);
    if (!log) throw new AppError(404, 'unknown_job', 'that job has no log');
    // The job ended and the caller has everything: 204 is the EventSource signal to stop
    // reconnecting (an empty 200 would make it reconnect every few seconds forever).
    if (log.ended && afterId >= log.lastId) return reply.code(204).header('Armhook-Job-Id', request.params.id).send();
    await streamJob(openStream(reply, 'sse', request.params.id), log, { format: 'sse', afterId, keepAliveMs: options.keepAliveMs });
  });

  app.delete<{ Params: { id: string } }>('/jobs/:id', async (request, reply) => {
    await known(request);
    const live = jobs.live(request.params.id);
    if (!live || !jobs.cancel(request.params.id)) {
      const record = await jobs.get(request.params.id);
      throw new AppError(409, 'job_ended', `job ${request.params.id} already ended (${record?.status ?? 'unknown'}); nothing to cancel`);
    }
    const record = await live.done;
    return reply.header('Armhook-Job-Id', record.id).send(record);
  });
}

/** GET /jobs: one page of the jobs this caller may see, filtered, with the link to the next. */
async function listJobs(jobs: JobManager, request: FastifyRequest<{ Querystring: ListQuery }>): Promise<{ items: JobPage['items']; next: string | null }> {
  const unknown = Object.keys(request.query).filter((key) => !LIST_PARAMS.has(key));
  if (unknown.length > 0) throw new AppError(400, 'bad_filter', `unknown filter ${quote(unknown.join(', '))}; use hook, status, caller, limit, after`);
  const { hook, status, caller, limit, after } = request.query;
  if (status !== undefined && !(JOB_STATUSES as readonly string[]).includes(status)) {
    throw new AppError(400, 'bad_filter', `status must be one of ${JOB_STATUSES.join(', ')}`);
  }
  const size = limit === undefined ? PAGE_DEFAULT : Number(limit);
  if (!Number.isInteger(size) || size < 1 || size > PAGE_MAX) throw new AppError(400, 'bad_limit', `limit must be a whole number from 1 to ${PAGE_MAX}`);
  if (after !== undefined && !isJobId(after)) throw new AppError(400, 'bad_cursor', 'after must be a job id (use the "next" link of the previous page)');
  const filter = { hook: hook?.replace(/^\//, ''), status: status as JobStatus | undefined, caller };
  const scope = request.access.jobs;
  if (scope === 'none')
    throw new AppError(403, 'forbidden', `${request.caller} may not see jobs; ask the operator for "jobs": "own" or "all" in the access file (ARMHOOK_ACCESS)`);
  // Under "own" the list is the caller's own jobs: another caller's name finds nothing.
  if (scope === 'own' && caller !== undefined && caller !== request.caller) return { items: [], next: null };
  if (scope === 'own') filter.caller = request.caller;
  const page = await jobs.list(filter, size, after);
  let next: string | null = null;
  if (page.next) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries({ hook: filter.hook, status, caller, limit })) if (v !== undefined) query.set(k, v);
    query.set('after', page.next);
    next = `/jobs?${query.toString()}`;
  }
  return { items: page.items, next };
}
