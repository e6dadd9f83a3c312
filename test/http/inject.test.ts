// The HTTP layer in process (fastify's inject: no socket, no TLS): routing, answer modes, and the
// `{ error, message }` answers with their statuses and headers. What is about transport (TLS,
// streaming to a slow or vanishing client, auth over the wire) stays in the real-socket tests.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { runMode } from '../../server/http/negotiate.ts';
import { buildServer, markerLine, type TestApp } from '../helpers/server.ts';

let server: TestApp;
let app: FastifyInstance;

before(async () => {
  server = await buildServer({
    config: { workers: 1, queue: 1 },
    scripts: {
      'echo.sh': '#!/bin/sh\n# @param name required pattern=[a-z]+ who\necho "hello $name"\ncat\n',
      'fail.sh': '#!/bin/sh\necho "going wrong" >&2\nexit 4\n',
      'marked.sh': `#!/bin/sh\n# @params none\n${markerLine('marked')}\n`,
    },
  });
  app = server.armhook.app;
  await app.ready();
});
after(async () => {
  await server?.close();
});

function errorOf(res: LightMyRequestResponse, status: number, code: string): string {
  assert.equal(res.statusCode, status, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = res.json<{ error: string; message: string }>();
  assert.equal(body.error, code);
  assert.ok(body.message.length > 0);
  return body.message;
}

describe('runs', () => {
  test("JSON mode: the job record with its output, Armhook-Job-Id, and the script's failure as 500-class status", async () => {
    const res = await app.inject({ method: 'POST', url: '/echo?name=world', headers: { accept: 'application/json' }, payload: 'stdin line' });
    assert.equal(res.statusCode, 200, res.body);
    const record = res.json<{ jobId: string; status: string; exitCode: number; output: string }>();
    assert.equal(res.headers['armhook-job-id'], record.jobId);
    assert.deepEqual([record.status, record.exitCode, record.output], ['succeeded', 0, 'hello world\nstdin line\n']);
    const failed = await app.inject({ method: 'POST', url: '/fail', headers: { accept: 'application/json' } });
    const body = failed.json<{ status: string; exitCode: number; output: string; error: { code: string } }>();
    assert.deepEqual([body.status, body.exitCode, body.output, body.error.code], ['failed', 4, 'going wrong\n', 'exit_code']);
    assert.ok(failed.statusCode >= 400, String(failed.statusCode));
  });

  test('Prefer: respond-async answers 202 with where to follow the job', async () => {
    const res = await app.inject({ method: 'POST', url: '/echo?name=later', headers: { prefer: 'respond-async' } });
    assert.equal(res.statusCode, 202, res.body);
    const body = res.json<{ jobId: string; location: string; events: string; log: string }>();
    assert.equal(res.headers['location'], `/jobs/${body.jobId}`);
    assert.deepEqual([body.events, body.log], [`/jobs/${body.jobId}/events`, `/jobs/${body.jobId}/log`]);
    const done = await app.inject({ url: `/jobs/${body.jobId}/log` });
    assert.equal(done.statusCode, 200);
  });

  test('GET describes a script without running it; HEAD is the same without a body', async () => {
    const described = await app.inject({ url: '/marked' });
    assert.equal(described.statusCode, 200);
    assert.equal(described.json<{ path: string }>().path, '/marked');
    const head = await app.inject({ method: 'HEAD', url: '/marked' });
    assert.deepEqual([head.statusCode, head.body], [200, '']);
    assert.equal(existsSync(join(server.markerDir, 'marked')), false);
  });

  const refused: Array<[string, InjectOptions, number, string]> = [
    ['an unknown hook', { method: 'POST', url: '/nope' }, 404, 'unknown_hook'],
    ['a missing required parameter', { method: 'POST', url: '/echo' }, 400, 'missing_param'],
    ['a value its pattern refuses', { method: 'POST', url: '/echo?name=NO' }, 400, 'invalid_param'],
    ['a parameter of a hook that takes none', { method: 'POST', url: '/marked?x=1' }, 400, 'unknown_param'],
    ['a bad X-Hook-Timeout', { method: 'POST', url: '/marked', headers: { 'x-hook-timeout': 'soon' } }, 400, 'bad_timeout'],
    ['a reconnecting EventSource (Last-Event-ID)', { method: 'POST', url: '/marked', headers: { 'last-event-id': '3' } }, 409, 'resume_not_run'],
    ['malformed JSON', { method: 'POST', url: '/marked', headers: { 'content-type': 'application/json' }, payload: '{' }, 400, 'bad_json'],
    ["a path outside the catalog's rules", { method: 'POST', url: '/.hidden' }, 404, 'unknown_hook'],
  ];
  for (const [name, request, status, code] of refused) {
    test(`refused before anything runs: ${name} (${status} ${code})`, async () => {
      errorOf(await app.inject(request), status, code);
      assert.equal(existsSync(join(server.markerDir, 'marked')), false, 'nothing ran');
    });
  }

  test('methods a hook does not take are 405 with Allow', async () => {
    for (const method of ['PUT', 'DELETE', 'PATCH'] as const) {
      const res = await app.inject({ method, url: '/marked' });
      errorOf(res, 405, 'method_not_allowed');
      assert.equal(res.headers['allow'], 'GET, HEAD, POST');
    }
  });
});

describe('typed handlers off Azure', () => {
  test('a handler answers 503 azure_not_ready with Retry-After, naming what is missing; no job is made', async () => {
    const before = (await app.inject({ url: '/jobs?hook=azure/whoami' })).json<{ items: unknown[] }>().items.length;
    const res = await app.inject({ url: '/azure/whoami' });
    assert.match(errorOf(res, 503, 'azure_not_ready'), /instance metadata/);
    assert.equal(res.headers['retry-after'], '30');
    assert.equal((await app.inject({ url: '/jobs?hook=azure/whoami' })).json<{ items: unknown[] }>().items.length, before);
  });

  test('parameters are checked before readiness: an unknown or invalid one is a 400', async () => {
    assert.match(errorOf(await app.inject({ url: '/azure/vms/show?rg=a&name=b&colour=red' }), 400, 'unknown_param'), /it takes: rg, name/);
    assert.match(errorOf(await app.inject({ url: '/azure/vms/show?rg=a&name=..%2Fx' }), 400, 'invalid_param'), /parameter "name"/);
  });

  test('GET describes a POST handler; other methods are 405 naming what the path takes', async () => {
    const described = await app.inject({ url: '/azure/vms/start' });
    assert.equal(described.statusCode, 200);
    assert.deepEqual(
      described.json<{ params: Array<{ name: string }> }>().params.map((p) => p.name),
      ['rg', 'name'],
    );
    const put = await app.inject({ method: 'PUT', url: '/azure/vms/start' });
    assert.match(errorOf(put, 405, 'method_not_allowed'), /runs on POST; GET describes it/);
    assert.equal(put.headers['allow'], 'GET, HEAD, POST');
    const post = await app.inject({ method: 'POST', url: '/azure/vms/show' });
    errorOf(post, 405, 'method_not_allowed');
    assert.equal(post.headers['allow'], 'GET, HEAD');
  });
});

describe('job routes', () => {
  const refused: Array<[string, string, number, string]> = [
    ['an unknown job', '/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV', 404, 'unknown_job'],
    ['a job id that is no id', '/jobs/nope', 404, 'unknown_job'],
    ['an unknown filter', '/jobs?colour=red', 400, 'bad_filter'],
    ['an unknown status', '/jobs?status=sleeping', 400, 'bad_filter'],
    ['a limit out of range', '/jobs?limit=0', 400, 'bad_limit'],
    ['a cursor that is no job id', '/jobs?after=x', 400, 'bad_cursor'],
    ['a Last-Event-ID that is no number', '/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/events?lastEventId=x', 404, 'unknown_job'],
  ];
  for (const [name, url, status, code] of refused) {
    test(`${name}: ${status} ${code}`, async () => {
      errorOf(await app.inject({ url }), status, code);
    });
  }

  test('a job that ended cannot be cancelled (409 job_ended)', async () => {
    const done = await app.inject({ method: 'POST', url: '/echo?name=x', headers: { accept: 'application/json' } });
    const id = done.json<{ jobId: string }>().jobId;
    assert.match(errorOf(await app.inject({ method: 'DELETE', url: `/jobs/${id}` }), 409, 'job_ended'), /already ended \(succeeded\)/);
  });
});

describe('answer modes (runMode), table-driven', () => {
  const cases: Array<[Record<string, string>, ReturnType<typeof runMode>]> = [
    [{}, 'sse'],
    [{ accept: '*/*' }, 'sse'],
    [{ accept: 'application/json' }, 'json'],
    [{ accept: 'text/plain' }, 'text'],
    [{ accept: 'text/event-stream' }, 'sse'],
    [{ accept: 'text/plain;q=0.5, application/json;q=0.9' }, 'json'],
    [{ accept: 'application/json;q=0, text/plain' }, 'text'],
    [{ accept: 'image/png' }, 'sse'],
    [{ prefer: 'respond-async', accept: 'application/json' }, 'async'],
    [{ prefer: 'wait=10, respond-async' }, 'async'],
    [{ prefer: 'return=minimal' }, 'sse'],
  ];
  for (const [headers, mode] of cases) {
    test(`${JSON.stringify(headers)} → ${mode}`, () => assert.equal(runMode(headers), mode));
  }
});
