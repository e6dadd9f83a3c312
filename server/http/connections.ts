// Connection limits: how many connections the server holds in all and per client address, and
// how long a connection may take to say what it wants. Connections past a cap are closed as
// soon as they are accepted, before any TLS work, so a connection storm costs a file descriptor
// for a moment and no memory.
import type { Server } from 'node:https';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';

export interface ConnectionLimits {
  /** Connections held at once, in all. */
  maxConnections: number;
  /** Connections held at once from one client address. */
  maxConnectionsPerAddress: number;
  /** Seconds from accepting a connection to a complete request head (TLS handshake included). */
  headersTimeout: number;
  /** Seconds from accepting a connection to a complete request, body included. */
  requestTimeout: number;
}

/** A refused-connections warning is logged at most this often. */
const WARN_EVERY_MS = 60_000;

/**
 * Options for https.createServer: the TLS handshake and the request head get `headersTimeout`,
 * and Node checks its connections' deadlines every half second instead of every 30 s.
 */
export function connectionServerOptions(limits: ConnectionLimits): {
  handshakeTimeout: number;
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
} {
  return {
    handshakeTimeout: limits.headersTimeout * 1000,
    headersTimeout: limits.headersTimeout * 1000,
    requestTimeout: limits.requestTimeout * 1000,
    connectionsCheckingInterval: 500,
  };
}

/** Applies the caps to a listening (or about to listen) server. */
export function limitConnections(server: Server, limits: ConnectionLimits, log: Logger): void {
  server.maxConnections = limits.maxConnections;
  const perAddress = new Map<string, number>();
  let lastWarning = 0;
  const refused = (why: string, address: string | undefined): void => {
    const now = Date.now();
    if (now - lastWarning < WARN_EVERY_MS) return;
    lastWarning = now;
    log.warn(
      { address, maxConnections: limits.maxConnections, maxConnectionsPerAddress: limits.maxConnectionsPerAddress },
      `refusing connections: ${why}; if these clients are legitimate, raise ARMHOOK_MAX_CONNECTIONS / ARMHOOK_MAX_CONNECTIONS_PER_ADDRESS (logged at most once a minute)`,
    );
  };
  server.on('drop', (data?: { remoteAddress?: string }) => refused(`${limits.maxConnections} connections are open`, data?.remoteAddress));
  // The TLS server's own 'connection' listener wraps every accepted socket in TLS (an OpenSSL
  // object and its buffers); it runs only for connections within the per-address cap.
  const wrapInTls = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    const count = perAddress.get(address) ?? 0;
    if (count >= limits.maxConnectionsPerAddress) {
      socket.destroy();
      refused(`${limits.maxConnectionsPerAddress} connections from one address are open`, address);
      return;
    }
    perAddress.set(address, count + 1);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
    });
    for (const listener of wrapInTls) listener.call(server, socket);
  });
}
