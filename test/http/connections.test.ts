// Connection limits with small configured values: caps in all and per client address (past them
// a connection is closed before TLS), and deadlines for the handshake, the request head and the
// whole request (body included), while a job's answer may stream for as long as the job runs.
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { after, before, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { gateLine, release } from '../helpers/process.ts';
import { readToEnd, tlsConnect } from '../helpers/raw.ts';
import { markerExists, markerLine, open, startServer, streamReader, type TestServer } from '../helpers/server.ts';

let server: TestServer;

before(async () => {
  server = await startServer({
    config: { maxConnections: 6, maxConnectionsPerAddress: 3, headersTimeout: 1, requestTimeout: 2 },
    scripts: {
      'slow-body.sh': `#!/bin/sh\n${markerLine('slow-body')}\ncat\n`,
      'long.sh': `#!/bin/sh\necho started\n${gateLine('go-long')}\necho finished\n`,
    },
  });
});
after(() => server.close());

/** Resolves true when a TLS connection from `address` is accepted, false when it is closed first. */
async function accepted(address: string): Promise<TLSSocket | undefined> {
  try {
    return await tlsConnect(server, address);
  } catch {
    return undefined;
  }
}

/** Sends a GET /healthz on an open connection and returns the status line. */
async function statusOn(socket: TLSSocket): Promise<string> {
  const answer = readToEnd(socket);
  socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  return (await answer).split('\r\n')[0] ?? '';
}

test('one address holds at most maxConnectionsPerAddress connections; other addresses still get in', async () => {
  const held = [];
  for (let i = 0; i < 3; i++) {
    const socket = await accepted('127.0.0.1');
    assert.ok(socket, `connection ${i + 1} of 3 is accepted`);
    held.push(socket);
  }
  assert.equal(await accepted('127.0.0.1'), undefined, 'the 4th from 127.0.0.1 is closed');
  const other = await accepted('127.0.0.2');
  assert.ok(other, 'another address gets in');
  assert.equal(await statusOn(other), 'HTTP/1.1 200 OK');
  // A freed place can be taken again (the server sees the close a moment later: retry, bounded).
  assert.match(await statusOn(held.pop()!), /^HTTP\/1\.1 200/);
  let again: TLSSocket | undefined;
  for (let i = 0; i < 100 && again === undefined; i++) again = await accepted('127.0.0.1');
  assert.ok(again, 'a place freed by a closed connection is taken again');
  for (const s of [...held, again]) s.destroy();
});

test('the server holds at most maxConnections in all', async () => {
  const held: TLSSocket[] = [];
  for (const address of ['127.0.0.3', '127.0.0.4', '127.0.0.5']) {
    for (let i = 0; i < 2; i++) {
      const socket = await accepted(address);
      assert.ok(socket);
      held.push(socket);
    }
  }
  assert.equal(await accepted('127.0.0.6'), undefined, 'the 7th connection is closed');
  for (const s of held) s.destroy();
});

test('a connection that never completes TLS, or never sends a request, is closed after headersTimeout', async () => {
  const raw = tcpConnect({ host: '127.0.0.1', port: server.port, localAddress: '127.0.0.7' });
  await new Promise<void>((resolve) => raw.on('close', () => resolve()).on('error', () => undefined));
  const idle = await tlsConnect(server, '127.0.0.7');
  const answer = await readToEnd(idle);
  assert.ok(answer === '' || /^HTTP\/1\.1 408/.test(answer), answer);
});

test('a body sent too slowly is cut at requestTimeout with a JSON 408, and nothing runs', async () => {
  const socket = await tlsConnect(server, '127.0.0.8');
  const answer = readToEnd(socket);
  socket.write('POST /slow-body HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nx');
  const text = await answer;
  assert.match(text, /^HTTP\/1\.1 408/);
  assert.equal(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)).error, 'request_timeout');
  assert.ok(!markerExists(server, 'slow-body'), 'the script never ran');
});

test("a job's answer streams past requestTimeout: the deadline is for receiving the request only", async () => {
  const stream = streamReader(await open(server, '/long', { method: 'POST' }));
  await stream.until((text) => text.includes('data: started'));
  // A slow body opened after the job started is cut first: the job's request is older still.
  const socket = await tlsConnect(server, '127.0.0.9');
  const cut = readToEnd(socket);
  socket.write('POST /slow-body HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n');
  assert.match(await cut, /^HTTP\/1\.1 408/);
  await release(server.markerDir, 'go-long');
  const text = await stream.end();
  assert.match(text, /data: finished/);
  assert.match(text, /"status":"succeeded"/);
});
