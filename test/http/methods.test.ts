// Methods: scripts run on POST only; GET describes, HEAD never runs anything,
// other methods are 405; a request carrying Last-Event-ID never starts a job; cross-site browser
// POSTs are refused while same-origin ones work.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  assertJsonError,
  assertNothingRan,
  curl,
  curlResponse,
  doneRecord,
  fetchText,
  listJobs,
  markerExists,
  markerLine,
  open,
  parseSse,
  startServer,
  streamReader,
  type TestServer,
} from '../helpers/server.ts';

let server: TestServer;

before(async () => {
  server = await startServer({
    scripts: {
      'deploy.sh': `#!/bin/sh\n# @description Deploys the thing\n# @param target required pattern=[a-z]+ Where to\n${markerLine('deploy')}\necho deployed\n`,
      'open.sh': `#!/bin/sh\n${markerLine('open')}\necho opened\n`,
      'same-origin.sh': '#!/bin/sh\necho "same-origin ran"\n',
      'gated.sh': '#!/bin/sh\necho first\nwhile [ ! -e "$ARMHOOK_TEST_MARKERS/$gate" ]; do sleep 0.05; done\necho second\n',
    },
  });
});

after(() => server.close());

test('GET on a script path returns its description and runs nothing', async () => {
  const before = (await listJobs(server)).length;
  const res = await curlResponse(server, [`${server.url}/deploy?target=prod`]);
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.equal(res.headers['armhook-job-id'], undefined);
  const description = res.json();
  assert.equal(description.path, '/deploy');
  assert.equal(description.method, 'POST');
  assert.equal(description.description, 'Deploys the thing');
  assert.equal(description.params[0].name, 'target');
  await assertNothingRan(server, 'deploy', before);
});

test('GET on an undeclared script describes it too (params null) and runs nothing', async () => {
  const before = (await listJobs(server)).length;
  const res = await curlResponse(server, [`${server.url}/open`]);
  assert.equal(res.status, 200);
  assert.equal(res.json().path, '/open');
  assert.equal(res.json().params, null);
  await assertNothingRan(server, 'open', before);
});

test('HEAD on a script path answers 200 without a body and runs nothing', async () => {
  const before = (await listJobs(server)).length;
  const res = await curlResponse(server, ['-I', `${server.url}/deploy?target=prod`]);
  assert.equal(res.status, 200);
  assert.equal(res.body, '');
  assert.equal(res.headers['armhook-job-id'], undefined);
  const viaNode = await fetchText(server, '/open', { method: 'HEAD' });
  assert.equal(viaNode.status, 200);
  assert.equal(viaNode.body, '');
  await assertNothingRan(server, 'deploy', before);
  await assertNothingRan(server, 'open', before);
});

test('HEAD on an unknown path is a 404 and runs nothing', async () => {
  const res = await fetchText(server, '/no/such/thing', { method: 'HEAD' });
  assert.equal(res.status, 404);
  assert.equal(res.body, '');
});

for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
  test(`${method} on a script path is a 405 JSON error and runs nothing`, async () => {
    const before = (await listJobs(server)).length;
    const res = await curlResponse(server, ['-X', method, `${server.url}/open`]);
    assertJsonError(res, 405);
    assert.match(String(res.headers.allow ?? ''), /POST/);
    await assertNothingRan(server, 'open', before);
  });
}

test('POST with Last-Event-ID is a 409 pointing to /jobs/<id>/events, and runs nothing', async () => {
  const before = (await listJobs(server)).length;
  const res = await curlResponse(server, ['-XPOST', '-H', 'Last-Event-ID: 42', `${server.url}/open`]);
  const body = assertJsonError(res, 409);
  assert.match(body.message, /\/jobs\/.*events/);
  await assertNothingRan(server, 'open', before);
});

test('POST with an empty Last-Event-ID is refused too', async () => {
  const before = (await listJobs(server)).length;
  const res = await curlResponse(server, ['-XPOST', '-H', 'Last-Event-ID;', `${server.url}/open`]);
  assertJsonError(res, 409);
  await assertNothingRan(server, 'open', before);
});

const crossSite: Array<[string, string[]]> = [
  ['Origin: https://evil.example', ['-H', 'Origin: https://evil.example']],
  ['Sec-Fetch-Site: cross-site', ['-H', 'Sec-Fetch-Site: cross-site']],
  ['Origin: null', ['-H', 'Origin: null']],
  ['Origin of another port on this host', ['-H', 'Origin: https://localhost:1']],
  ['cross-site Sec-Fetch-Site with a same-origin Origin', ['-H', 'Sec-Fetch-Site: cross-site', '-H', 'ORIGIN_SELF']],
  ['a browser form post from elsewhere', ['-H', 'Origin: https://evil.example', '-H', 'Sec-Fetch-Site: cross-site', '--data', 'target=prod']],
];

for (const [name, headers] of crossSite) {
  test(`cross-site POST (${name}) is a 403 and runs nothing`, async () => {
    const before = (await listJobs(server)).length;
    const args = headers.map((h) => (h === 'ORIGIN_SELF' ? `Origin: ${server.url}` : h));
    const res = await curlResponse(server, ['-XPOST', ...args, `${server.url}/open`]);
    assertJsonError(res, 403);
    await assertNothingRan(server, 'open', before);
  });
}

test('a cross-site DELETE cannot cancel a running job', async () => {
  const res = await open(server, '/gated?gate=g-cross-delete', { method: 'POST' });
  const id = String(res.headers['armhook-job-id']);
  const reader = streamReader(res);
  try {
    await reader.until((t) => t.includes('data: first\n'));
    const refused = await curlResponse(server, ['-X', 'DELETE', '-H', 'Origin: https://evil.example', `${server.url}/jobs/${id}`]);
    assertJsonError(refused, 403);
    assert.equal((await fetchText(server, `/jobs/${id}`)).json().status, 'running');
  } finally {
    await writeFile(join(server.markerDir, 'g-cross-delete'), '');
  }
  const { events } = parseSse(await reader.end());
  assert.equal(doneRecord(events).status, 'succeeded');
});

test('a same-origin browser POST works', async () => {
  const result = await curl(server, ['-XPOST', '-H', `Origin: ${server.url}`, '-H', 'Sec-Fetch-Site: same-origin', `${server.url}/same-origin`]);
  const { events } = parseSse(result.stdout);
  assert.equal(doneRecord(events).status, 'succeeded', result.stdout);
  assert.ok(events.some((e) => e.data === 'same-origin ran'));
});

test('a POST runs the script (the control for the refusals above)', async () => {
  assert.ok(!markerExists(server, 'open'));
  const result = await curl(server, ['-XPOST', `${server.url}/open`]);
  assert.equal(doneRecord(parseSse(result.stdout).events).status, 'succeeded');
  assert.ok(markerExists(server, 'open'), 'the marker proves scripts do run when allowed');
});
