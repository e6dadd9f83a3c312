// Connection limits: how many connections the server holds in all and per client address, and
// how long a connection may take to say what it wants. Connections past a cap are closed as
// soon as they are accepted, before Node makes a socket object of them, so a connection storm
// costs a file descriptor for a moment and no memory.
import type { Server } from 'node:https';
import { BlockList, type Socket, type SocketAddress } from 'node:net';
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
 * The addresses holding their cap of connections, as the BlockList Node consults before it makes
 * a socket object of an accepted connection: a refused connection is closed there, with no
 * JavaScript object, no TLS and nothing left for the garbage collector (a storm of refused
 * sockets otherwise grows the heap and the allocator's arenas, and they keep that size).
 */
class AddressesAtCap extends BlockList {
  readonly #counts: ReadonlyMap<string, number>;
  readonly #cap: number;
  readonly #onRefused: (address: string) => void;

  constructor(counts: ReadonlyMap<string, number>, cap: number, onRefused: (address: string) => void) {
    super();
    this.#counts = counts;
    this.#cap = cap;
    this.#onRefused = onRefused;
  }

  override check(address: string | SocketAddress): boolean {
    const key = typeof address === 'string' ? address : address.address;
    if ((this.#counts.get(key) ?? 0) < this.#cap) return false;
    this.#onRefused(key);
    return true;
  }
}

/** What https.createServer gets from the guard. */
export interface ConnectionServerOptions {
  handshakeTimeout: number;
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
  blockList: BlockList;
}

/**
 * Caps and deadlines for one server. `serverOptions` go to https.createServer: the TLS handshake
 * and the request head get `headersTimeout`, Node checks deadlines every half second instead of
 * every 30 s, and the per-address cap is checked before a socket exists. `attach` counts the
 * connections of the server created with them.
 */
export class ConnectionGuard {
  readonly serverOptions: ConnectionServerOptions;
  readonly #limits: ConnectionLimits;
  readonly #log: Logger;
  readonly #perAddress = new Map<string, number>();
  #lastWarning = 0;

  constructor(limits: ConnectionLimits, log: Logger) {
    this.#limits = limits;
    this.#log = log;
    this.serverOptions = {
      handshakeTimeout: limits.headersTimeout * 1000,
      headersTimeout: limits.headersTimeout * 1000,
      requestTimeout: limits.requestTimeout * 1000,
      connectionsCheckingInterval: 500,
      blockList: new AddressesAtCap(this.#perAddress, limits.maxConnectionsPerAddress, (address) => this.#refusedAddress(address)),
    };
  }

  /** Applies the caps to the server created with `serverOptions`. */
  attach(server: Server): void {
    server.maxConnections = this.#limits.maxConnections;
    server.on('drop', (data?: { remoteAddress?: string }) => this.#refused(`${this.#limits.maxConnections} connections are open`, data?.remoteAddress));
    // The TLS server's own 'connection' listener wraps every accepted socket in TLS (an OpenSSL
    // object and its buffers). The BlockList refuses before that; a connection Node could not
    // check there (no peer address) is refused here, still before TLS.
    const wrapInTls = server.listeners('connection') as Array<(socket: Socket) => void>;
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      if (!this.#admit(socket)) return;
      for (const listener of wrapInTls) listener.call(server, socket);
    });
  }

  /** Counts a connection against its address's cap, or closes it when the address is at the cap. */
  #admit(socket: Socket): boolean {
    const address = socket.remoteAddress ?? '';
    const count = this.#perAddress.get(address) ?? 0;
    if (count >= this.#limits.maxConnectionsPerAddress) {
      socket.destroy();
      this.#refusedAddress(address);
      return false;
    }
    this.#perAddress.set(address, count + 1);
    socket.once('close', () => {
      const left = (this.#perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.#perAddress.set(address, left);
      else this.#perAddress.delete(address);
    });
    return true;
  }

  #refusedAddress(address: string): void {
    this.#refused(`${this.#limits.maxConnectionsPerAddress} connections from one address are open`, address);
  }

  #refused(why: string, address: string | undefined): void {
    const now = Date.now();
    if (now - this.#lastWarning < WARN_EVERY_MS) return;
    this.#lastWarning = now;
    const { maxConnections, maxConnectionsPerAddress } = this.#limits;
    this.#log.warn(
      { address, maxConnections, maxConnectionsPerAddress },
      `refusing connections: ${why}; if these clients are legitimate, raise ARMHOOK_MAX_CONNECTIONS / ARMHOOK_MAX_CONNECTIONS_PER_ADDRESS (logged at most once a minute)`,
    );
  }
}
