// A loopback TCP proxy the test controls: it forwards to a server and can cut every connection
// it carries (at once, or after a number of bytes from the server), so clients can be tested
// against a connection that drops mid-stream. It forwards bytes only (TLS stays end to end).
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface CutProxy {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Destroys every open connection (both sides); new ones are still accepted. */
  cut(): void;
  /** Cuts the connection that is open once `bytes` more have gone from the server to the client. */
  cutAfter(bytes: number): void;
  close(): Promise<void>;
}

export async function startCutProxy(targetPort: number): Promise<CutProxy> {
  const open = new Set<[Socket, Socket]>();
  let connections = 0;
  let budget: number | undefined;
  const server: Server = createServer((client) => {
    connections++;
    const upstream = connect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    open.add(pair);
    const drop = (): void => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (budget !== undefined && chunk.length >= budget) {
        // Forward part of this chunk, then cut: the client sees a stream ending mid-record.
        client.write(chunk.subarray(0, budget), () => drop());
        budget = undefined;
        upstream.pause();
        return;
      }
      if (budget !== undefined) budget -= chunk.length;
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
  });
  const cut = (): void => {
    for (const [client, upstream] of open) {
      client.destroy();
      upstream.destroy();
    }
    open.clear();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    get connections() {
      return connections;
    },
    cut,
    cutAfter(bytes: number) {
      budget = bytes;
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
