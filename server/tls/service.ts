// The HTTPS server's certificate over the process's life: chosen at start-up (operator files,
// ACME, or the dev certificate), then replaced without a restart when the files change or ACME
// renews it.
import { readFile } from 'node:fs/promises';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { AcmeCertificates, parseAcmeDomains, storedAcmeCertificate } from './acme.ts';
import { loadDevMaterial } from './dev-cert.ts';
import { errorText } from './inspect.ts';
import { loadTlsMaterial } from './load.ts';
import { TlsMaterialError } from './material.ts';
import { watchCertificateFiles, type CertificateFileWatch } from './reload.ts';
import { ServedCertificate, type ServedOptions } from './served.ts';

export interface TlsServiceOptions {
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** Where the dev certificate lives (ARMHOOK_TLS_DIR). */
  devDir: string;
  /** ARMHOOK_ACME_* settings; `domains` unset = no ACME. */
  acme: { domains?: string | undefined; email?: string | undefined; directoryUrl: string; caFile?: string | undefined; dir: string; listenPort: number };
  /** Back-off after a failed ACME attempt (tests shorten it). */
  acmeRetry?: { initialMs?: number; maxMs?: number } | undefined;
  log: Logger;
}

export interface TlsService {
  /** For the HTTPS server's constructor. */
  readonly serverOptions: ServedOptions;
  /** Expiry of the certificate new connections get. */
  notAfter(): Date;
  /** Once the server exists: starts watching the files or the ACME renewal timer. */
  start(server: TlsServer): void;
  close(): void;
}

export async function createTlsService(options: TlsServiceOptions): Promise<TlsService> {
  const { log } = options;
  let acme: AcmeCertificates | undefined;
  let served: ServedCertificate;
  if (options.acme.domains !== undefined) {
    let domains: string[];
    try {
      domains = parseAcmeDomains(options.acme.domains);
    } catch (err) {
      throw new TlsMaterialError(errorText(err), []);
    }
    if (options.acme.listenPort !== 443 && !options.acme.caFile) {
      log.warn(
        { port: options.acme.listenPort, directory: options.acme.directoryUrl },
        `ACME validates TLS-ALPN-01 on port 443, and armhook listens on ${options.acme.listenPort}: listen on 443 (ARMHOOK_LISTEN=0.0.0.0:443) or forward 443 to it`,
      );
    }
    let caCert: string | undefined;
    if (options.acme.caFile) {
      try {
        caCert = await readFile(options.acme.caFile, 'utf8');
      } catch (err) {
        throw new TlsMaterialError(`ARMHOOK_ACME_CA_FILE=${options.acme.caFile}: cannot read it (${errorText(err)})`, []);
      }
    }
    const initial =
      (await storedAcmeCertificate(options.acme.dir, domains, log)) ?? (await loadDevMaterial({ devDir: options.devDir, log, hostnames: domains }));
    served = new ServedCertificate(initial, log);
    acme = new AcmeCertificates({
      domains,
      email: options.acme.email,
      directoryUrl: options.acme.directoryUrl,
      caCert,
      dir: options.acme.dir,
      served,
      log,
      retryInitialMs: options.acmeRetry?.initialMs,
      retryMaxMs: options.acmeRetry?.maxMs,
    });
  } else {
    served = new ServedCertificate(await loadTlsMaterial({ certFile: options.certFile, keyFile: options.keyFile, devDir: options.devDir, log }), log);
  }

  let watch: CertificateFileWatch | undefined;
  return {
    serverOptions: served.serverOptions(acme !== undefined),
    notAfter: () => served.current.notAfter,
    start(server) {
      served.attach(server);
      if (acme) acme.start();
      else if (served.current.source === 'files')
        watch = watchCertificateFiles({ current: served.current, log, onChange: (material) => served.replace(material) });
    },
    close() {
      acme?.close();
      watch?.close();
    },
  };
}
