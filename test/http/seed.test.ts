// The seed scenario: curl POST /vm/create?vmname=&rg=&pw= streams the script's output as SSE
// (scripts/vm/create.sh as shipped, with a fake az on PATH; test/az/ runs it with the real CLI).
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { curl, parseSse, startServer, type TestServer } from '../helpers/server.ts';

const FAKES = join(import.meta.dirname, '..', 'fakes', 'bin');
let server: TestServer;

before(async () => {
  process.env.PATH = `${FAKES}:${process.env.PATH ?? ''}`;
  const createScript = await readFile(join(import.meta.dirname, '..', '..', 'scripts', 'vm', 'create.sh'), 'utf8');
  server = await startServer({ scripts: { 'vm/create.sh': createScript } });
});
after(() => server.close());

test('the seed call streams az output as SSE, masks pw, and ends with exit code 0', async () => {
  const pw = 'S3cret-Pa55word!';
  const result = await curl(server, ['-XPOST', `${server.url}/vm/create?vmname=myvm&rg=myrg&pw=${encodeURIComponent(pw)}`]);
  assert.equal(result.code, 0, result.stderr);
  const { events } = parseSse(result.stdout);
  assert.equal(events[0]?.event, 'job');
  const done = events.at(-1);
  assert.equal(done?.event, 'done');
  const record = JSON.parse(done?.data ?? '{}');
  assert.equal(record.status, 'succeeded');
  assert.equal(record.exitCode, 0);
  assert.equal(record.hook, 'vm/create');
  assert.equal(record.params.pw, '***');
  const lines = events.filter((e) => e.event === 'message').map((e) => e.data);
  assert.ok(lines.includes('Authenticating...az login --identity'), lines.join('\n'));
  assert.ok(
    lines.some((l) => l.startsWith('Creating the vm...az vm create') && l.includes('--admin-password ***')),
    lines.join('\n'),
  );
  assert.ok(lines.includes('config dir ok'), 'the script got a private AZURE_CONFIG_DIR');
  for (const event of events) assert.ok(event.id !== undefined, 'every event has an id');
  assert.ok(!result.stdout.includes(pw), 'the password never reaches the stream');
  assert.ok(!server.logs.text().includes(pw), 'the password never reaches the log');
  // The job database and its WAL, as bytes (SQLite stores text as it is).
  const stored = (
    await Promise.all(
      (await readdir(server.dataDir)).filter((name) => name.startsWith('armhook.db')).map((name) => readFile(join(server.dataDir, name), 'latin1')),
    )
  ).join('');
  assert.ok(stored.includes(record.id), 'the job is stored');
  assert.ok(!stored.includes(pw), 'the password is never stored');
  assert.ok(!server.logs.text().includes('myvm'), 'request logs carry the path, not parameter values');
});

test("a failing az gives the script's non-zero exit code in the done event", async () => {
  const result = await curl(server, ['-XPOST', `${server.url}/vm/create?vmname=fail-me&rg=myrg&pw=x`]);
  const { events } = parseSse(result.stdout);
  const record = JSON.parse(events.at(-1)?.data ?? '{}');
  assert.equal(record.status, 'failed');
  assert.equal(record.exitCode, 3, 'set -e: the failing az stops the script with its exit code');
  assert.ok(!events.some((e) => e.data.startsWith('Creating the vm...')), 'nothing after the failure ran');
  assert.ok(events.some((e) => e.event === 'stderr' && e.data.includes('the fake was asked to fail')));
});
