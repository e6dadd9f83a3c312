// `# @params any`: a hook declares the parameters that need rules (a secret, a pattern) and still
// takes any other valid name, as the founding script does with `# @param pw secret`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  assertJsonError,
  assertNothingRan,
  curl,
  curlResponse,
  doneRecord,
  fetchText,
  listJobs,
  markerLine,
  parseSse,
  readTree,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

let server: TestServer;

const anyScript = (marker: string): string =>
  [
    '#!/bin/sh',
    '# @description Takes anything; pw is secret, rg has a pattern',
    '# @params any',
    '# @param pw required secret The password',
    '# @param rg pattern=[a-z]+ The group',
    markerLine(marker),
    'echo "vmname=$vmname rg=$rg extra=$extra pw=$pw"',
    '',
  ].join('\n');

before(async () => {
  server = await startServer({
    scripts: {
      'any.sh': anyScript('any'),
      'guarded.sh': anyScript('guarded'),
      'strict.sh': '#!/bin/sh\n# @param pw secret\necho strict\n',
      'contradiction.sh': '#!/bin/sh\n# @params none\n# @params any\necho never\n',
    },
  });
});
after(() => server.close());

test('undeclared valid names are accepted, declared ones keep their rules, the secret is masked everywhere', async () => {
  const pw = 'Any-S3cret-Value';
  const result = await curl(server, ['-XPOST', `${server.url}/any?vmname=myvm&rg=myrg&extra=1&pw=${pw}`]);
  assert.equal(result.code, 0, result.stderr);
  const { events } = parseSse(result.stdout);
  const record = doneRecord(events);
  assert.equal(record.status, 'succeeded', result.stdout);
  assert.ok(
    events.some((e) => e.data === 'vmname=myvm rg=myrg extra=1 pw=***'),
    result.stdout,
  );
  assert.deepEqual(record.params, { vmname: 'myvm', rg: 'myrg', extra: '1', pw: '***' });
  assert.ok(!result.stdout.includes(pw));
  const stored = (await readTree(server.dataDir)).toString('latin1');
  assert.ok(stored.includes(record.id) && !stored.includes(pw), 'stored, without the secret');
});

test('with @params any, a declared rule still refuses (400) before anything runs: pattern, required, name rules', async () => {
  for (const [query, code] of [
    ['rg=NOT-lower&pw=x', 'invalid_param'],
    ['rg=ok', 'missing_param'],
    ['pw=x&Bad=1', 'bad_param_name'],
    ['pw=x&https_proxy=http://evil', 'denied_param_name'],
  ] as const) {
    const before = (await listJobs(server)).length;
    const res = await curlResponse(server, ['-XPOST', `${server.url}/guarded?${query}`]);
    assertJsonError(res, 400, code);
    await assertNothingRan(server, 'guarded', before);
  }
});

test('without @params any, declaring one parameter still makes the hook strict', async () => {
  const res = await curlResponse(server, ['-XPOST', `${server.url}/strict?pw=x&rg=myrg`]);
  const body = assertJsonError(res, 400, 'unknown_param');
  assert.match(body.message, /no parameter "rg"/);
});

test('the catalog shows anyParams for such a hook; @params none with @params any is an invalid header', async () => {
  const res = await fetchText(server, '/hooks');
  assert.equal(res.status, 200);
  const catalog = res.json<{ hooks: Array<Record<string, any>>; invalid: Array<{ path: string; error: string }> }>();
  const any = catalog.hooks.find((h) => h.path === '/any');
  assert.equal(any?.anyParams, true);
  assert.deepEqual(
    any?.params.map((p: { name: string }) => p.name),
    ['pw', 'rg'],
  );
  assert.equal(catalog.hooks.find((h) => h.path === '/strict')?.anyParams, undefined);
  const invalid = catalog.invalid.find((h) => h.path === 'contradiction' || h.path === '/contradiction');
  assert.match(invalid?.error ?? '', /@params none and @params any contradict each other/);
});
