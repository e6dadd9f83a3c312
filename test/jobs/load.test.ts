// Several jobs with heavy output at once (stdout and stderr): every job completes with its full
// log, and the server keeps running jobs afterwards. Waits are bounded polls of GET /jobs/<id>,
// so a stuck job fails the test instead of hanging it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { open, startServer, type TestServer } from '../helpers/server.ts';
import { createInterface } from 'node:readline';
import { pollFinal, startAsync, waitDone } from './helpers.ts';

const LINES = 200_000;
// ~20.8 MB of stdout, then 1000 lines of stderr, from one awk process.
const BIG = `#!/bin/sh
awk 'BEGIN { pad = sprintf("%090d", 0); for (i = 1; i <= ${LINES}; i++) printf "line %07d %s\\n", i, pad; for (i = 1; i <= 1000; i++) printf "err %d\\n", i > "/dev/stderr" }'
`;

let server: TestServer;

before(async () => {
  server = await startServer({ config: { workers: 4, queue: 10 }, scripts: { 'big.sh': BIG, 'quick.sh': '#!/bin/sh\necho quick\n' } });
});
after(async () => {
  // Bounded: a server with a stuck job must not hang the whole run. If it can't close, this
  // file's process ends here (the results above are already reported).
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    server.close().then(
      () => true,
      () => false,
    ),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 30_000))),
  ]);
  clearTimeout(timer);
  if (!closed) {
    process.stderr.write('load.test.ts: the server did not close (a job is stuck); exiting this test file\n');
    process.exit(1);
  }
});

async function countLog(id: string): Promise<{ out: number; err: number }> {
  const res = await open(server, `/jobs/${id}/log`);
  assert.equal(res.statusCode, 200);
  let out = 0;
  let err = 0;
  for await (const line of createInterface({ input: res })) {
    if (line.startsWith('line ')) out++;
    else if (line.startsWith('err ')) err++;
  }
  return { out, err };
}

test('four jobs writing ~20 MB each at once all succeed, with every line stored', { timeout: 100_000 }, async () => {
  const ids = await Promise.all([1, 2, 3, 4].map(() => startAsync(server, '/big')));
  const records = await Promise.all(ids.map((id) => pollFinal(server, id)));
  for (const record of records) {
    assert.equal(record.status, 'succeeded', `${record.id}: ${JSON.stringify(record.error)}`);
    assert.equal(record.exitCode, 0);
  }
  for (const id of ids) assert.deepEqual(await countLog(id), { out: LINES, err: 1000 }, `job ${id} stored everything`);
});

test('after heavy jobs, the server still runs new jobs', { timeout: 60_000 }, async () => {
  const id = await startAsync(server, '/quick');
  const record = await pollFinal(server, id, 500);
  assert.equal(record.status, 'succeeded', JSON.stringify(record));
  assert.equal((await waitDone(server, id)).exitCode, 0);
});

test(
  'heavy output while the server is busy (its event loop blocked in bursts, as on a loaded 1-vCPU VM): every job still succeeds in full',
  { timeout: 100_000 },
  async (t) => {
    // Load, not synchronisation: the server process is this process, so blocking our event loop in
    // bursts makes the server read its scripts' output slower than they write it (backpressure).
    const block = new Int32Array(new SharedArrayBuffer(4));
    const busy = setInterval(() => Atomics.wait(block, 0, 0, 20), 25);
    busy.unref();
    t.after(() => clearInterval(busy));
    let records;
    let ids: string[];
    try {
      ids = await Promise.all([1, 2, 3, 4].map(() => startAsync(server, '/big')));
      records = await Promise.all(ids.map((id) => pollFinal(server, id, 1500)));
    } finally {
      clearInterval(busy);
    }
    for (const record of records) assert.equal(record.status, 'succeeded', `${record.id}: ${JSON.stringify(record.error)}`);
    for (const id of ids) assert.deepEqual(await countLog(id), { out: LINES, err: 1000 }, `job ${id} stored everything`);
  },
);

test('after heavy output under load, the server still runs new jobs (a few in a row)', { timeout: 60_000 }, async () => {
  for (let i = 0; i < 3; i++) {
    const id = await startAsync(server, '/quick');
    const record = await pollFinal(server, id, 500);
    assert.equal(record.status, 'succeeded', `job ${i + 1} after the load: ${JSON.stringify(record)}`);
  }
});
