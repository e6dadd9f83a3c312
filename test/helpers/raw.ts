// Raw TLS connections to a test server: requests no HTTP client would send, and connections
// that send nothing at all.
import { connect, type TLSSocket } from 'node:tls';
import type { TestServer } from './server.ts';

/** A TLS connection to the server, verified against its CA, from `localAddress` when given. */
export function tlsConnect(server: Pick<TestServer, 'port' | 'ca'>, localAddress?: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: server.port, ca: server.ca, servername: 'localhost', ...(localAddress ? { localAddress } : {}) }, () =>
      resolve(socket),
    );
    socket.once('error', reject);
  });
}

/** Everything the server sends until it closes the connection. */
export function readToEnd(socket: TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => resolve(text));
    socket.on('error', () => undefined);
  });
}

/** Sends `text` as is on a new connection and returns the raw answer (up to the close). */
export async function rawExchange(server: Pick<TestServer, 'port' | 'ca'>, text: string): Promise<{ status: number; head: string; body: string }> {
  const socket = await tlsConnect(server);
  const answer = readToEnd(socket);
  socket.write(text);
  const raw = await answer;
  const split = raw.indexOf('\r\n\r\n');
  const head = split < 0 ? raw : raw.slice(0, split);
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), head, body: split < 0 ? '' : raw.slice(split + 4) };
}
