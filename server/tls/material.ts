import { StartupError } from '../errors.ts';
// Types and the error shared by the TLS loaders.

export const CERT_SETTING = 'ARMHOOK_TLS_CERT';
export const KEY_SETTING = 'ARMHOOK_TLS_KEY';

export type TlsSetting = typeof CERT_SETTING | typeof KEY_SETTING;

export type TlsMaterialSource = 'files' | 'dev-generated' | 'dev-existing' | 'acme';

export interface TlsMaterial {
  /** PEM certificate (leaf first, then any intermediates from the file). */
  cert: string;
  /** PEM private key. Never log it. */
  key: string;
  source: TlsMaterialSource;
  /** Absolute path of the certificate file. */
  certPath: string;
  /** Absolute path of the key file. */
  keyPath: string;
  /** Expiry of the leaf certificate. */
  notAfter: Date;
  /** Start of the leaf's validity (ACME renewal is timed from it). */
  notBefore?: Date;
}

/** Start-up error about TLS settings; the message names the setting(s) and says what to do. */
export class TlsMaterialError extends StartupError {
  /** The configuration settings the problem is about (may be empty for dev-certificate problems). */
  readonly settings: readonly TlsSetting[];

  constructor(message: string, settings: readonly TlsSetting[], options?: ErrorOptions) {
    super(message, options);
    this.name = 'TlsMaterialError';
    this.settings = settings;
  }
}

export const DAY_MS = 24 * 60 * 60 * 1000;
