import { JOB_STATUSES } from '../jobs/index.ts';
import type { HookDescription } from './describe.ts';

/**
 * An OpenAPI 3.1 description of the server as it is now: every hook and handler with its
 * parameters, the job endpoints, and the shapes they answer with, so that strict validators
 * accept it and generators (openapi-typescript and the like) produce typed clients.
 */

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json): Json => ({ 'application/json': { schema } });
const errorResponse = (description: string): Json => ({ description, content: json(ref('Error')) });

const SCHEMAS: Record<string, Json> = {
  JobStatus: { type: 'string', enum: [...JOB_STATUSES] },
  Error: {
    type: 'object',
    description: 'Every error armhook answers with.',
    required: ['error', 'message'],
    properties: { error: { type: 'string', description: 'a stable code, e.g. unknown_job' }, message: { type: 'string', description: 'what to do' } },
  },
  JobError: {
    type: 'object',
    required: ['code', 'message'],
    properties: { code: { type: 'string' }, message: { type: 'string' }, status: { type: 'integer' } },
    additionalProperties: true,
  },
  JobRecord: {
    type: 'object',
    description: 'A job: what GET /jobs/{id} returns and what the `done` event carries.',
    required: ['id', 'hook', 'kind', 'method', 'status', 'exitCode', 'createdAt', 'startedAt', 'endedAt', 'durationMs', 'caller', 'params', 'result', 'error'],
    properties: {
      id: { type: 'string' },
      hook: { type: 'string', description: 'hook path without the leading slash, e.g. vm/create' },
      kind: { type: 'string', enum: ['script', 'handler'] },
      method: { type: 'string' },
      status: ref('JobStatus'),
      exitCode: { type: ['integer', 'null'], description: 'scripts only' },
      createdAt: { type: 'string', format: 'date-time' },
      startedAt: { type: ['string', 'null'], format: 'date-time' },
      endedAt: { type: ['string', 'null'], format: 'date-time' },
      durationMs: { type: ['integer', 'null'] },
      caller: { type: 'string' },
      params: { type: 'object', additionalProperties: { type: 'string' }, description: 'secret values are ***' },
      result: { description: 'typed handlers: resource id, provisioning state, deployment outputs' },
      error: { oneOf: [ref('JobError'), { type: 'null' }] },
      pgid: { type: ['integer', 'null'] },
    },
  },
  JobWithOutput: {
    description: 'Accept: application/json: the finished job record with its output.',
    allOf: [
      ref('JobRecord'),
      {
        type: 'object',
        required: ['jobId', 'output', 'outputTruncated'],
        properties: { jobId: { type: 'string' }, output: { type: 'string' }, outputTruncated: { type: 'boolean' }, outputNote: { type: 'string' } },
      },
    ],
  },
  Accepted: {
    type: 'object',
    description: 'Prefer: respond-async: the job was accepted.',
    required: ['jobId', 'id', 'status', 'location', 'events', 'log'],
    properties: {
      jobId: { type: 'string' },
      id: { type: 'string' },
      status: ref('JobStatus'),
      location: { type: 'string' },
      events: { type: 'string' },
      log: { type: 'string' },
    },
  },
  JobPage: {
    type: 'object',
    required: ['items', 'next'],
    properties: { items: { type: 'array', items: ref('JobRecord') }, next: { type: ['string', 'null'], description: 'the URL of the next page' } },
  },
  HookParam: {
    type: 'object',
    required: ['name', 'required', 'secret', 'description'],
    properties: {
      name: { type: 'string' },
      required: { type: 'boolean' },
      secret: { type: 'boolean' },
      pattern: { type: 'string' },
      default: { type: 'string' },
      description: { type: 'string' },
      from: { type: 'string', description: 'where the value comes from: a JSON Pointer into the body (/ref) or header:<name>' },
    },
  },
  Hook: {
    type: 'object',
    required: ['path', 'method', 'kind', 'description', 'params'],
    properties: {
      path: { type: 'string' },
      method: { type: 'string', enum: ['GET', 'POST'] },
      kind: { type: 'string', enum: ['script', 'handler'] },
      description: { type: 'string' },
      params: { oneOf: [{ type: 'array', items: ref('HookParam') }, { type: 'null' }], description: 'null: any valid parameter name' },
      timeout: { type: 'integer' },
      respond: { type: 'string', enum: ['async'], description: 'answers 202 unless the caller asks for SSE, text or JSON' },
      body: { type: 'string', enum: ['document'], description: 'the request body is the input (a template); parameters go in the query' },
    },
  },
  Catalog: {
    type: 'object',
    required: ['hooks', 'invalid'],
    properties: {
      hooks: { type: 'array', items: ref('Hook') },
      invalid: { type: 'array', items: { type: 'object', required: ['path', 'error'], properties: { path: { type: 'string' }, error: { type: 'string' } } } },
    },
  },
};

const SSE = {
  'text/event-stream': {
    schema: {
      type: 'string',
      description: 'events `job`, `queued`, stdout as the default event, `stderr`, `progress`, and a final `done` carrying the job record',
    },
  },
};
const TEXT = { 'text/plain': { schema: { type: 'string' } } };

const RUN_RESPONSES: Json = {
  '200': {
    description:
      'Streamed while the job runs (SSE by default, plain text with Accept: text/plain), or with Accept: application/json the finished job record and its output',
    headers: { 'Armhook-Job-Id': { schema: { type: 'string' }, description: 'the job id, sent before any output' } },
    content: { ...SSE, ...TEXT, ...json(ref('JobWithOutput')) },
  },
  '202': {
    description: 'Prefer: respond-async (or a hook that declares @respond async): the job was accepted',
    headers: { Location: { schema: { type: 'string' }, description: '/jobs/<id>' }, 'Armhook-Job-Id': { schema: { type: 'string' } } },
    content: json(ref('Accepted')),
  },
  '400': errorResponse('a parameter is missing, unknown or invalid; nothing ran'),
  '401': errorResponse('authentication required'),
  '403': errorResponse('refused (a cross-site browser request, or not allowed to run this hook)'),
  '409': errorResponse('the request carries Last-Event-ID (resume with /jobs/{id}/events), or, in JSON mode, the job was cancelled'),
  '422': errorResponse('this Idempotency-Key already started a job with other parameters or another body'),
  '429': errorResponse('the queue is full, or too many failed authentications from this address; retry after Retry-After seconds'),
  '500': errorResponse('JSON mode: the script failed (the body is the job record)'),
  '503': errorResponse('the server is shutting down or not ready'),
  '504': errorResponse('JSON mode: the job timed out'),
};

const PREFER = {
  name: 'Prefer',
  in: 'header',
  required: false,
  description: '`respond-async` answers 202 at once with the job id',
  schema: { type: 'string', enum: ['respond-async'] },
};

const IDEMPOTENCY_KEY = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'a repeat with the same key (same caller, within 24 h) gets the job the first request started; the same key with other parameters or body is 422',
  schema: { type: 'string', minLength: 1, maxLength: 255 },
};

const JOB_ID = { name: 'id', in: 'path', required: true, description: 'a job id', schema: { type: 'string' } };
const UNKNOWN_JOB = errorResponse('no such job');

/** An operationId from a hook path: "vm/create" → "run_vm_create" (made unique by a suffix). */
function operationIds(): (path: string) => string {
  const used = new Set<string>();
  return (path) => {
    const base = `run_${path.replace(/^\//, '').replace(/[^A-Za-z0-9]+/g, '_')}`;
    let id = base;
    for (let n = 2; used.has(id); n++) id = `${base}_${n}`;
    used.add(id);
    return id;
  };
}

function requestBody(hook: HookDescription): Json {
  if (hook.body === 'document') {
    return { required: true, description: 'the document this handler takes (e.g. {"template": …, "parameters": …})', content: json({ type: 'object' }) };
  }
  const stdin = hook.kind === 'script' ? "the script's stdin; " : '';
  return {
    required: false,
    description: `${stdin}form fields or a JSON object's scalar fields are parameters too`,
    content: {
      'application/json': { schema: {} },
      'application/x-www-form-urlencoded': { schema: { type: 'object' } },
      ...(hook.kind === 'script' ? { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } : {}),
    },
  };
}

function hookOperation(hook: HookDescription, operationId: string): Json {
  // A parameter taken from the body by JSON Pointer is described with the body, not as a query parameter.
  const parameters = (hook.params ?? [])
    .filter((p) => p.from === undefined || p.from.startsWith('header:'))
    .map((p) => ({
      name: p.from?.startsWith('header:') ? p.from.slice('header:'.length) : p.name,
      in: p.from?.startsWith('header:') ? 'header' : 'query',
      required: p.required,
      description: p.from?.startsWith('header:') ? `${p.description} (the script's ${p.name})`.trim() : p.description,
      schema: {
        type: 'string',
        // Script patterns must match the whole value; handler patterns carry their own anchors.
        ...(p.pattern ? { pattern: `^(?:${p.pattern})$` } : {}),
        ...(p.default !== undefined ? { default: p.default } : {}),
        ...(p.secret ? { format: 'password', writeOnly: true } : {}),
      },
    }));
  const undeclared = hook.params === null ? ' Undeclared: any parameter name matching ^[a-z][a-z0-9_]*$ is accepted (query, form or JSON body).' : '';
  const fromBody = (hook.params ?? [])
    .filter((p) => p.from?.startsWith('/'))
    .map((p) => ` ${p.name} is the body's ${p.from}.`)
    .join('');
  const where = hook.body === 'document' ? 'Parameters go in the query; the body is the document.' : 'Parameters may also come in a form or JSON body.';
  return {
    operationId,
    summary: hook.description || hook.path,
    description: `${hook.kind === 'script' ? 'Runs the script' : 'Runs the typed Azure handler'} ${hook.path} as a job. ${where}${undeclared}${fromBody}${hook.respond === 'async' ? ' Answers 202 unless the caller asks for SSE, text or JSON.' : ''}`,
    tags: [hook.kind],
    parameters: [...parameters, PREFER, IDEMPOTENCY_KEY],
    ...(hook.method === 'POST' ? { requestBody: requestBody(hook) } : {}),
    responses: RUN_RESPONSES,
  };
}

/** Where a replay resumes: the header EventSource sends, or the query for clients that cannot set headers. */
const LAST_EVENT_ID = [
  { name: 'Last-Event-ID', in: 'header', required: false, description: 'resume after this event id', schema: { type: 'string', pattern: '^\\d{1,15}$' } },
  {
    name: 'lastEventId',
    in: 'query',
    required: false,
    description: 'the same, for clients that cannot set headers',
    schema: { type: 'string', pattern: '^\\d{1,15}$' },
  },
];

function jobPaths(): Record<string, Json> {
  const listFilters = [
    { name: 'hook', in: 'query', required: false, description: 'hook path', schema: { type: 'string' } },
    { name: 'status', in: 'query', required: false, schema: ref('JobStatus') },
    { name: 'caller', in: 'query', required: false, schema: { type: 'string' } },
    { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 500, default: 50 } },
    { name: 'after', in: 'query', required: false, description: 'a job id: the page after it (use `next`)', schema: { type: 'string' } },
  ];
  return {
    '/hooks': {
      get: {
        operationId: 'listHooks',
        summary: 'The hooks and handlers this caller may run, with their parameters',
        tags: ['jobs'],
        responses: { '200': { description: 'the catalog', content: json(ref('Catalog')) }, '401': errorResponse('authentication required') },
      },
    },
    '/jobs': {
      get: {
        operationId: 'listJobs',
        summary: 'Jobs, newest first',
        tags: ['jobs'],
        parameters: listFilters,
        responses: {
          '200': { description: 'one page', content: json(ref('JobPage')) },
          '400': errorResponse('an unknown filter or a bad value'),
          '401': errorResponse('authentication required'),
        },
      },
    },
    '/jobs/{id}': {
      parameters: [JOB_ID],
      get: {
        operationId: 'getJob',
        summary: 'A job record',
        tags: ['jobs'],
        responses: { '200': { description: 'the record', content: json(ref('JobRecord')) }, '404': UNKNOWN_JOB },
      },
      delete: {
        operationId: 'cancelJob',
        summary: 'Cancel a queued or running job; answers when it has ended',
        tags: ['jobs'],
        responses: {
          '200': { description: 'the cancelled record', content: json(ref('JobRecord')) },
          '404': UNKNOWN_JOB,
          '409': errorResponse('the job already ended'),
        },
      },
    },
    '/jobs/{id}/events': {
      parameters: [JOB_ID],
      get: {
        operationId: 'jobEvents',
        summary: 'Replay the job as server-sent events, then follow it to its end',
        tags: ['jobs'],
        parameters: LAST_EVENT_ID,
        responses: {
          '200': { description: 'the events after Last-Event-ID, live until `done`', content: SSE },
          '204': { description: 'the job has ended and nothing follows Last-Event-ID: stop reconnecting' },
          '400': errorResponse('Last-Event-ID is not an event id'),
          '404': UNKNOWN_JOB,
        },
      },
    },
    '/jobs/{id}/log': {
      parameters: [JOB_ID],
      get: {
        operationId: 'jobLog',
        summary: 'The output so far as plain text',
        tags: ['jobs'],
        responses: { '200': { description: 'stdout and stderr lines, then a status line once the job ended', content: TEXT }, '404': UNKNOWN_JOB },
      },
    },
  };
}

export function openApi(hooks: HookDescription[]): Json {
  const operationId = operationIds();
  const paths: Record<string, Json> = {};
  for (const hook of hooks) paths[hook.path] = { [hook.method.toLowerCase()]: hookOperation(hook, operationId(hook.path)) };
  Object.assign(paths, jobPaths());
  return {
    openapi: '3.1.0',
    info: { title: 'armhook', version: '1', description: 'Runs deployment scripts and typed Azure handlers as jobs; output streams as server-sent events.' },
    tags: [
      { name: 'script', description: 'deployment scripts' },
      { name: 'handler', description: 'typed Azure handlers' },
      { name: 'jobs', description: 'the catalog and the jobs' },
    ],
    components: {
      schemas: SCHEMAS,
      securitySchemes: {
        basic: { type: 'http', scheme: 'basic', description: 'a user of the htpasswd file' },
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'an Entra ID access token for the audience in ARMHOOK_ENTRA_AUDIENCE' },
      },
    },
    security: [{ basic: [] }, { bearer: [] }],
    paths,
  };
}
