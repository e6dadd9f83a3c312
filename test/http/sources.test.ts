// Parameters from the body and from headers (`# @param … from=`), declared hooks that ignore the
// rest of a sender's JSON, and `# @respond async`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { githubPush } from '../fakes/senders.ts';
import { assertJsonError, doneRecord, fetchText, markerExists, parseSse, startServer, type TestServer } from '../helpers/server.ts';

let server: TestServer;

before(async () => {
  server = await startServer({
    scripts: {
      'push.sh': [
        '#!/bin/sh',
        '# @param ref required from=/ref pattern=refs/heads/.+ The branch',
        '# @param pusher from=/pusher/name',
        '# @param event from=header:X-GitHub-Event default=push',
        '# @param env default=test',
        'touch "$ARMHOOK_TEST_MARKERS/push-$env"',
        'echo "ref=$ref pusher=$pusher event=$event env=$env"',
      ].join('\n'),
      'later.sh': '#!/bin/sh\n# @respond async\n# @params none\necho later\n',
    },
  });
});
after(() => server.close());

const json = (body: unknown, headers: Record<string, string> = {}): { method: string; body: string; headers: Record<string, string> } => ({
  method: 'POST',
  body: JSON.stringify(body),
  headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
});

test('from=/json/pointer and from=header: fill declared parameters; the rest of the JSON document is not parameters and is never refused', async () => {
  const res = await fetchText(server, '/push?env=prod', json(githubPush(3), { 'x-github-event': 'push' }));
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json().output, 'ref=refs/heads/main pusher=mona event=push env=prod\n');
  assert.deepEqual(res.json().params, { ref: 'refs/heads/main', pusher: 'mona', event: 'push', env: 'prod' });
});

test('sourced values are validated like any parameter; a missing required one is 400; a sourced name sent directly is 400; nothing runs', async () => {
  const cases: Array<[string, ReturnType<typeof json>, string, string]> = [
    ['/push?env=tag', json(githubPush(1, 'refs/tags/v1')), 'invalid_param', 'tag'],
    ['/push?env=noref', json({ pusher: { name: 'x' } }), 'missing_param', 'noref'],
    ['/push?env=object', json({ ref: { nested: true } }), 'invalid_param', 'object'],
    ['/push?env=direct&ref=refs/heads/main', json({}), 'sourced_param', 'direct'],
  ];
  for (const [path, options, code, env] of cases) {
    assertJsonError(await fetchText(server, path, options), 400, code);
    assert.ok(!markerExists(server, `push-${env}`), `${env} must not run`);
  }
});

test('# @respond async: 202 for a caller that names no format (*/*), SSE or JSON when asked for explicitly', async () => {
  const plain = await fetchText(server, '/later', { method: 'POST', headers: { accept: '*/*' } });
  assert.equal(plain.status, 202, plain.body);
  assert.ok(plain.headers.location);
  const sse = await fetchText(server, '/later', { method: 'POST', headers: { accept: 'text/event-stream' } });
  assert.equal(sse.status, 200);
  assert.equal(doneRecord(parseSse(sse.body).events).status, 'succeeded');
  const asJson = await fetchText(server, '/later', { method: 'POST', headers: { accept: 'application/json' } });
  assert.equal(asJson.json().output, 'later\n');
});

test('the catalog and OpenAPI say where each value comes from', async () => {
  const hook = (await fetchText(server, '/hooks')).json().hooks.find((h: { path: string }) => h.path === '/push');
  const from = Object.fromEntries(hook.params.map((p: { name: string; from?: string }) => [p.name, p.from]));
  assert.deepEqual(from, { ref: '/ref', pusher: '/pusher/name', event: 'header:x-github-event', env: undefined });
  assert.equal((await fetchText(server, '/hooks')).json().hooks.find((h: { path: string }) => h.path === '/later').respond, 'async');
  const op = (await fetchText(server, '/openapi.json')).json().paths['/push'].post;
  const names = op.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`);
  assert.ok(names.includes('header:x-github-event') && names.includes('query:env') && !names.includes('query:ref'), names.join(' '));
  assert.match(op.description, /ref is the body's \/ref/);
});
