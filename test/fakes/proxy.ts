/**
 * A recording HTTP proxy on loopback, for proving where a client's traffic goes: every request
 * (plain `GET http://…` and `CONNECT host:port`) is recorded; loopback targets are forwarded (to
 * the IMDS and ARM fakes), anything else is refused with 403 and never leaves the machine.
 */
import { createServer, request, type Server } from 'node:http';
import { connect, isIP, type AddressInfo, type Socket } from 'node:net';

export interface ProxiedRequest {
  method: string;
  /** host:port for CONNECT, the absolute URL otherwise. */
  target: string;
  host: string;
  forwarded: boolean;
}

export interface RecordingProxy {
  /** http://127.0.0.1:<port> */
  url: string;
  requests: ProxiedRequest[];
  close(): Promise<void>;
}

const isLoopbackHost = (host: string): boolean => host === 'localhost' || (isIP(host) === 4 && host.startsWith('127.')) || host === '::1' || host === '[::1]';

export async function startRecordingProxy(): Promise<RecordingProxy> {
  const requests: ProxiedRequest[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('absolute URL expected');
      return;
    }
    const forwarded = isLoopbackHost(url.hostname);
    requests.push({ method: req.method ?? 'GET', target: url.href, host: url.hostname, forwarded });
    if (!forwarded) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('the test proxy only reaches loopback');
      return;
    }
    const upstream = request(url, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  server.on('connect', (req, client: Socket, head: Buffer) => {
    const target = req.url ?? '';
    const colon = target.lastIndexOf(':');
    const host = target.slice(0, colon).replace(/^\[|\]$/g, '');
    const forwarded = isLoopbackHost(host);
    requests.push({ method: 'CONNECT', target, host, forwarded });
    if (!forwarded) {
      client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    const upstream = connect(Number(target.slice(colon + 1)), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
