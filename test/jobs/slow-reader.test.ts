// A reader that stops reading neither stops the job nor loses its output, and the
// server holds only a bounded number of bytes for it (measured in bytes buffered, not by time).
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { open, startServer, type TestServer } from '../helpers/server.ts';
import { pollFinal } from './helpers.ts';

const LINES = 200_000;
// "line 0000001 " + 90 zeros + "\n" = 104 bytes a line: about 20.8 MB in all.
const BIG = `#!/bin/sh
awk 'BEGIN { pad = sprintf("%090d", 0); for (i = 1; i <= ${LINES}; i++) printf "line %07d %s\\n", i, pad }'
`;
const PRODUCED = LINES * 104;
const BOUND = 4 * 1024 * 1024;

let server: TestServer;

/** The most bytes any tracked response held (its own buffer plus its socket's) right after a write. */
interface Tracker {
  max: number;
  writes: number;
  responses: ServerResponse[];
}

function track(match: (req: IncomingMessage) => boolean): Tracker {
  const tracker: Tracker = { max: 0, writes: 0, responses: [] };
  server.armhook.app.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!match(req)) return;
    tracker.responses.push(res);
    const write = res.write;
    res.write = function (this: ServerResponse, ...args: unknown[]) {
      const ok = (write as (...a: unknown[]) => boolean).apply(this, args);
      tracker.writes++;
      tracker.max = Math.max(tracker.max, this.writableLength, this.socket?.writableLength ?? 0);
      return ok;
    } as typeof res.write;
  });
  return tracker;
}

function sample(tracker: Tracker): void {
  for (const res of tracker.responses) tracker.max = Math.max(tracker.max, res.writableLength, res.socket?.writableLength ?? 0);
}

/** Reads an SSE response to its end without keeping it: counts output lines, checks their order. */
async function countSse(res: IncomingMessage): Promise<{ lines: number; done: string | undefined; inOrder: boolean }> {
  let partial = '';
  let lines = 0;
  let inOrder = true;
  let done: string | undefined;
  let inDone = false;
  res.setEncoding('utf8');
  for await (const chunk of res) {
    partial += chunk as string;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (line.startsWith('data: line ')) {
        lines++;
        if (Number(line.slice(11, 18)) !== lines) inOrder = false;
      } else if (line === 'event: done') inDone = true;
      else if (inDone && line.startsWith('data: ')) {
        done = line.slice(6);
        inDone = false;
      }
    }
  }
  return { lines, done, inOrder };
}

/** Counts the stored stdout lines of a job through GET /jobs/<id>/log (streamed, not kept), checking their order. */
async function countStored(id: string): Promise<number> {
  const res = await open(server, `/jobs/${id}/log`);
  assert.equal(res.statusCode, 200);
  const reader = createInterface({ input: res });
  let count = 0;
  for await (const line of reader) {
    if (!line.startsWith('line ')) continue;
    count++;
    assert.equal(line.slice(0, 12), `line ${String(count).padStart(7, '0')}`, 'stored lines in order');
  }
  return count;
}

before(async () => {
  server = await startServer({ scripts: { 'big.sh': BIG } });
});
after(() => server.close());

test('an SSE caller that stops reading: the job completes, its log is complete, and the server buffers a bounded amount for that reader', async (t) => {
  const tracker = track((req) => req.method === 'POST' && (req.url ?? '').startsWith('/big'));
  const res = await open(server, '/big', { method: 'POST' });
  t.after(() => res.destroy());
  assert.equal(res.statusCode, 200);
  const id = String(res.headers['armhook-job-id']);
  res.pause(); // the reader stops reading: nothing is consumed from here on

  const record = await pollFinal(server, id);
  assert.equal(record.status, 'succeeded', JSON.stringify(record));
  sample(tracker);
  assert.equal(await countStored(id), LINES, 'every line is stored although the caller read none');
  assert.ok(tracker.writes > 0);
  t.diagnostic(`most bytes held for the paused reader: ${tracker.max} (${tracker.writes} writes) of ${PRODUCED} produced`);
  assert.ok(tracker.max < BOUND, `held ${tracker.max} bytes for a paused reader while ${PRODUCED} were produced`);

  // The reader comes back and still gets every line, in order, and the done event.
  const counted = await countSse(res);
  assert.equal(counted.lines, LINES);
  assert.ok(counted.inOrder, 'lines arrive in order');
  assert.equal(JSON.parse(counted.done ?? '{}').status, 'succeeded');
  assert.ok(tracker.max < BOUND, `held at most ${tracker.max} bytes`);
});

test('a paused reader of GET /jobs/<id>/events (a tail of the same 20 MB job) is bounded too, and a reader that leaves is let go', async (t) => {
  const run = await open(server, '/big', { method: 'POST', headers: { Prefer: 'respond-async' } });
  assert.equal(run.statusCode, 202);
  const id = String(run.headers['armhook-job-id']);
  run.resume();
  const tracker = track((req) => (req.url ?? '').startsWith(`/jobs/${id}/events`));
  const tail = await open(server, `/jobs/${id}/events`);
  t.after(() => tail.destroy());
  assert.equal(tail.statusCode, 200);
  tail.pause();
  const record = await pollFinal(server, id);
  assert.equal(record.status, 'succeeded');
  sample(tracker);
  t.diagnostic(`most bytes held for the paused tail: ${tracker.max}`);
  assert.ok(tracker.max < BOUND, `held ${tracker.max} bytes for a paused tail`);
  assert.equal(await countStored(id), LINES);

  // The reader goes away for good: its response is closed on the server side.
  const response = tracker.responses[0];
  assert.ok(response);
  const closed = new Promise<void>((resolve) => {
    if (response.destroyed || response.writableFinished) resolve();
    else response.once('close', () => resolve());
  });
  tail.destroy();
  await closed;
});
