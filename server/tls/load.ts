import type { Logger } from 'pino';
import { loadDevMaterial } from './dev-cert.ts';
import { loadFileMaterial } from './files.ts';
import { CERT_SETTING, KEY_SETTING, TlsMaterialError, type TlsMaterial } from './material.ts';

export interface LoadTlsOptions {
  /** ARMHOOK_TLS_CERT: PEM certificate file (leaf first, optionally followed by intermediates). */
  certFile?: string | undefined;
  /** ARMHOOK_TLS_KEY: PEM private key file (unencrypted). */
  keyFile?: string | undefined;
  /** Where the dev certificate lives when neither file is configured (the project's tls/). */
  devDir: string;
  log: Logger;
  /** Extra names for the dev certificate's subjectAltName (besides localhost, 127.0.0.1, ::1). */
  hostnames?: readonly string[] | undefined;
}

/**
 * The server's certificate and key: the operator's files when both ARMHOOK_TLS_CERT and
 * ARMHOOK_TLS_KEY are set, a self-signed dev certificate under `devDir` when neither is.
 * Throws TlsMaterialError (message names the setting) on anything unusable. An empty string
 * counts as not set.
 */
export async function loadTlsMaterial(options: LoadTlsOptions): Promise<TlsMaterial> {
  const certFile = options.certFile === '' ? undefined : options.certFile;
  const keyFile = options.keyFile === '' ? undefined : options.keyFile;
  if (certFile !== undefined && keyFile !== undefined) return loadFileMaterial(certFile, keyFile, options.log);
  if (certFile !== undefined || keyFile !== undefined) {
    const [set, unset] = certFile !== undefined ? ([CERT_SETTING, KEY_SETTING] as const) : ([KEY_SETTING, CERT_SETTING] as const);
    throw new TlsMaterialError(
      `${set} is set but ${unset} is not: both are needed (the PEM certificate and its private key); set neither to use a self-signed dev certificate`,
      [unset],
    );
  }
  return loadDevMaterial({ devDir: options.devDir, log: options.log, hostnames: options.hostnames });
}
