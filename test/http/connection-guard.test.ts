// The connection guard in process, on a plain TCP server (the caps are about accepted sockets,
// not TLS): a connection past the per-address cap is refused before Node makes a socket object
// of it, so a storm of refused connections leaves nothing behind for the garbage collector.
import assert from 'node:assert/strict';
import type { Server as HttpsServer } from 'node:https';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { ConnectionGuard } from '../../server/http/connections.ts';
import { captureLog } from '../helpers/log.ts';

const LIMITS = { maxConnections: 100, maxConnectionsPerAddress: 3, headersTimeout: 10, requestTimeout: 60 };

async function guardedServer(): Promise<{ server: Server; socketsMade: () => number; warnings: () => string[] }> {
  const { log, entries } = captureLog();
  const guard = new ConnectionGuard(LIMITS, log);
  const server = createServer({ blockList: guard.serverOptions.blockList });
  server.on('connection', () => undefined);
  guard.attach(server as unknown as HttpsServer);
  // Every socket object Node makes for an accepted connection passes through 'connection'.
  let made = 0;
  server.prependListener('connection', () => made++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, socketsMade: () => made, warnings: () => entries().map((e) => e.msg) };
}

/** Opens a connection from `address`; resolves with it once connected, and `closed` once the server closed it. */
function open(server: Server, address: string, opened: Socket[]): { socket: Socket; closed: Promise<void> } {
  const { port } = server.address() as { port: number };
  const socket = connect({ host: '127.0.0.1', port, localAddress: address });
  socket.on('error', () => undefined);
  opened.push(socket);
  return { socket, closed: new Promise((resolve) => socket.once('close', () => resolve())) };
}

test('connections past the per-address cap are closed before a socket object exists; others still get in', async (t) => {
  const { server, socketsMade, warnings } = await guardedServer();
  const clients: Socket[] = [];
  t.after(async () => {
    for (const socket of clients) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const held = [0, 1, 2].map(() => open(server, '127.0.3.1', clients));
  await Promise.all(held.map(({ socket }) => new Promise((resolve) => socket.once('connect', resolve))));
  // The server counts a connection when it accepts it, a moment after the client's connect.
  for (let i = 0; i < 200 && socketsMade() < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(socketsMade(), 3);

  const refused = [0, 1, 2, 3, 4].map(() => open(server, '127.0.3.1', clients));
  await Promise.all(refused.map(({ closed }) => closed));
  const other = open(server, '127.0.3.2', clients);
  await new Promise((resolve) => other.socket.once('connect', resolve));
  for (let i = 0; i < 200 && socketsMade() < 4; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(socketsMade(), 4, 'the five refused connections never became socket objects; the other address got in');
  assert.equal(held.filter(({ socket }) => !socket.destroyed).length, 3, 'the connections within the cap stay open');
  assert.match(warnings().join('\n'), /refusing connections: 3 connections from one address are open/);
});
