// /openapi.json is OpenAPI 3.1 that a strict validator accepts and from which a generated client
// type-checks: openapi-typescript writes the types, openapi-fetch calls /jobs/{id} with them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { compileErrors, validate } from '@readme/openapi-parser';
import openapiTS, { astToString } from 'openapi-typescript';
import { fetchText, startServer, type TestServer } from '../helpers/server.ts';

let server: TestServer;
let doc: Record<string, any>;

before(async () => {
  server = await startServer({
    scripts: {
      'vm/create.sh':
        '#!/bin/sh\n# @description Create a VM\n# @param rg required pattern=[a-z][a-z0-9-]* resource group\n# @param vmname required VM name\n# @param pw required secret admin password\n# @param size default=Standard_B1s VM size\necho ok\n',
      'vm-create.sh': '#!/bin/sh\necho same operation id base\n',
      'free.sh': '#!/bin/sh\necho "$who"\n',
    },
  });
  const res = await fetchText(server, '/openapi.json');
  assert.equal(res.status, 200, res.body);
  doc = res.json();
});
after(() => server.close());

test('a strict validator (@readme/openapi-parser) accepts the document without errors', async () => {
  const result = await validate(structuredClone(doc) as never);
  assert.ok(result.valid, result.valid ? '' : compileErrors(result));
  assert.equal(doc.openapi, '3.1.0');
});

test('path parameters, hook parameters (required, pattern, default, secret), response schemas and the security scheme are declared', () => {
  for (const path of ['/jobs/{id}', '/jobs/{id}/events', '/jobs/{id}/log']) {
    assert.deepEqual(doc.paths[path].parameters, [{ name: 'id', in: 'path', required: true, description: 'a job id', schema: { type: 'string' } }], path);
  }
  const create = doc.paths['/vm/create'].post;
  const byName = Object.fromEntries(create.parameters.map((p: { name: string }) => [p.name, p]));
  assert.deepEqual(Object.keys(byName), ['rg', 'vmname', 'pw', 'size', 'Prefer', 'Idempotency-Key']);
  assert.equal(byName.rg.required, true);
  assert.equal(byName.rg.schema.pattern, '^(?:[a-z][a-z0-9-]*)$');
  assert.equal(byName.pw.schema.format, 'password');
  assert.equal(byName.size.schema.default, 'Standard_B1s');
  assert.equal(byName.size.required, false);
  assert.deepEqual(create.responses['202'].content['application/json'].schema, { $ref: '#/components/schemas/Accepted' });
  assert.ok(create.responses['200'].content['text/event-stream']);
  assert.deepEqual(create.responses['400'].content['application/json'].schema, { $ref: '#/components/schemas/Error' });
  assert.match(doc.paths['/free'].post.description, /Undeclared/);
  assert.notEqual(doc.paths['/vm/create'].post.operationId, doc.paths['/vm-create'].post.operationId, 'operation ids are unique');
  assert.ok(
    doc.paths['/azure/groups/create'].post.parameters.some((p: { name: string }) => p.name === 'name'),
    'typed handlers with their schema parameters',
  );
  const deploy = doc.paths['/azure/deployments/create'].post;
  assert.deepEqual(Object.keys(deploy.requestBody.content), ['application/json'], 'a document body: the template');
  assert.equal(deploy.requestBody.required, true);
  assert.equal(doc.paths['/azure/groups'].get.requestBody, undefined, 'GET handlers take no body');
  assert.deepEqual(doc.paths['/jobs/{id}'].get.responses['200'].content['application/json'].schema, { $ref: '#/components/schemas/JobRecord' });
  assert.ok(doc.paths['/jobs/{id}/events'].get.responses['204'], 'the EventSource stop signal is documented');
  assert.deepEqual(doc.components.securitySchemes.basic, { type: 'http', scheme: 'basic', description: 'a user of the htpasswd file' });
  assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
  assert.deepEqual(doc.security, [{ basic: [] }, { bearer: [] }], 'either scheme');
});

function tsc(cwd: string): Promise<{ code: number; output: string }> {
  const bin = resolve('node_modules/typescript/bin/tsc');
  return new Promise((done) => {
    execFile(process.execPath, [bin, '-p', cwd], { cwd }, (error, stdout, stderr) => {
      done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr });
    });
  });
}

test('openapi-typescript generates a client in which an openapi-fetch call of /jobs/{id} type-checks, and a wrong one does not', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'armhook-client-'));
  try {
    await symlink(resolve('node_modules'), join(dir, 'node_modules'));
    await writeFile(join(dir, 'armhook.d.ts'), astToString(await openapiTS(structuredClone(doc) as never)));
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'esnext', moduleResolution: 'bundler', types: ['node'], skipLibCheck: true },
        include: ['*.ts'],
      }),
    );
    await writeFile(
      join(dir, 'good.ts'),
      `import createClient from 'openapi-fetch';
import type { paths, components } from './armhook.d.ts';

const client = createClient<paths>({ baseUrl: 'https://runner.example.com' });
export async function statusOf(id: string): Promise<components['schemas']['JobStatus']> {
  const { data, error } = await client.GET('/jobs/{id}', { params: { path: { id } } });
  if (error) throw new Error(error.message);
  const exit: number | null = data.exitCode;
  void exit;
  return data.status;
}
export async function start(): Promise<string | undefined> {
  const { data } = await client.POST('/vm/create', { params: { query: { rg: 'rg1', vmname: 'vm1', pw: 'x' }, header: { Prefer: 'respond-async' } } });
  return typeof data === 'object' && 'jobId' in data ? data.jobId : undefined;
}
`,
    );
    await writeFile(
      join(dir, 'bad.ts'),
      `import createClient from 'openapi-fetch';
import type { paths } from './armhook.d.ts';

const client = createClient<paths>({ baseUrl: 'https://runner.example.com' });
export async function wrong(): Promise<void> {
  const { data } = await client.GET('/jobs/{id}', { params: { path: { id: 42 } } });
  const hook: number | undefined = data?.hook;
  void hook;
  await client.POST('/vm/create', { params: { query: { rg: 'rg1' } } });
}
`,
    );
    const { code, output } = await tsc(dir);
    assert.notEqual(code, 0, 'bad.ts must not compile');
    const errors = output.split('\n').filter((line) => /error TS\d+/.test(line));
    assert.ok(
      errors.every((line) => line.startsWith('bad.ts')),
      `good.ts compiles:\n${output}`,
    );
    assert.deepEqual(
      errors.map((line) => /^bad\.ts\((\d+),/.exec(line)?.[1]),
      ['6', '7', '9'],
      `each wrong use is caught:\n${output}`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
