// The certificate the HTTPS server hands to new connections, swapped without a restart:
// `setSecureContext` changes what the next handshake gets; connections already open (SSE streams
// included) keep theirs.
import { createSecureContext, type SecureContext, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { TlsMaterial } from './material.ts';
import { httpsServerOptions, type HttpsServerOptions } from './options.ts';

/** The ALPN protocol of TLS-ALPN-01 validation (RFC 8737). */
export const ACME_TLS_ALPN = 'acme-tls/1';

export interface ServedOptions extends HttpsServerOptions {
  ALPNCallback?: (this: TLSSocket, arg: { servername: string; protocols: string[] }) => string | undefined;
}

export class ServedCertificate {
  #material: TlsMaterial;
  #server: TlsServer | undefined;
  readonly #log: Logger;
  /** TLS-ALPN-01 answers by server name, while an ACME validation is pending. */
  readonly #challenges = new Map<string, SecureContext>();

  constructor(initial: TlsMaterial, log: Logger) {
    this.#material = initial;
    this.#log = log;
  }

  get current(): TlsMaterial {
    return this.#material;
  }

  /**
   * Options for the HTTPS server. With `acme`, ALPN is chosen per connection: a validator that
   * asks for `acme-tls/1` gets the challenge certificate for its server name, everyone else
   * HTTP/1.1 with the served certificate.
   */
  serverOptions(acme: boolean): ServedOptions {
    const options: ServedOptions = httpsServerOptions(this.#material);
    if (!acme) return options;
    const challenges = this.#challenges;
    options.ALPNCallback = function selectProtocol({ servername, protocols }) {
      if (protocols.includes(ACME_TLS_ALPN)) {
        const context = challenges.get(servername?.toLowerCase() ?? '');
        if (!context) return undefined; // no validation pending for that name: refuse
        this.setKeyCert(context);
        return ACME_TLS_ALPN;
      }
      return protocols.includes('http/1.1') ? 'http/1.1' : undefined;
    };
    return options;
  }

  /** The server whose secure context `replace` swaps (after it is created, before or after listen). */
  attach(server: TlsServer): void {
    this.#server = server;
  }

  replace(material: TlsMaterial): void {
    this.#server?.setSecureContext(httpsServerOptions(material));
    this.#material = material;
    this.#log.info(
      { source: material.source, certPath: material.certPath, notAfter: material.notAfter.toISOString() },
      `new connections get the ${material.source} certificate from ${material.certPath}, valid until ${material.notAfter.toISOString()}`,
    );
  }

  addChallenge(servername: string, cert: string, key: string): void {
    this.#challenges.set(servername.toLowerCase(), createSecureContext({ cert, key }));
  }

  removeChallenge(servername: string): void {
    this.#challenges.delete(servername.toLowerCase());
  }
}
