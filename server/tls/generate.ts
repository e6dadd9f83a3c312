// Certificate generation for the self-signed dev certificate, via the `selfsigned` package
// (node:crypto cannot create X.509 certificates). ECDSA P-256, SHA-256 signatures.
import { isIP } from 'node:net';
import { DAY_MS } from './material.ts';

/** Names every dev certificate covers, before any configured hostnames. */
export const DEFAULT_DEV_HOSTNAMES: readonly string[] = ['localhost', '127.0.0.1', '::1'];

export const DEV_COMMON_NAME = 'armhook dev';

/** Certificates start a little in the past so that small clock differences between machines don't reject them. */
const BACKDATE_MS = 60 * 60 * 1000;

export interface GenerateCertOptions {
  /** Subject common name. */
  commonName: string;
  /** DNS names and IP addresses for the subjectAltName extension (already validated). */
  hostnames: readonly string[];
  /** Default: now minus one hour. */
  notBefore?: Date;
  /** Default: now plus `validityDays`. */
  notAfter?: Date;
  /** Default 365. Ignored when `notAfter` is given. */
  validityDays?: number;
}

export interface GeneratedCert {
  /** PEM certificate, ending with a newline. */
  cert: string;
  /** PEM PKCS#8 private key, ending with a newline. */
  key: string;
  notAfter: Date;
}

const DNS_NAME = /^(\*\.)?[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?)*$/;

/**
 * Lower-cases, de-duplicates and validates hostnames (DNS names, optionally with a leading
 * `*.` wildcard, or IPv4/IPv6 addresses). Throws on anything that can't go into a certificate.
 */
export function normalizeHostnames(hostnames: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of hostnames) {
    const name = raw.trim().toLowerCase().replace(/\.$/, '');
    const bracketless = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
    if (isIP(bracketless) !== 0) {
      if (!out.includes(bracketless)) out.push(bracketless);
      continue;
    }
    if (name.length === 0 || name.length > 253 || !DNS_NAME.test(name)) {
      throw new Error(`TLS hostname ${JSON.stringify(raw)} is neither a DNS name nor an IP address`);
    }
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/** Makes sure PEM text ends with exactly one newline (concatenated PEM blocks need it). */
export function withTrailingNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

/** A self-signed leaf certificate for TLS servers: ECDSA P-256, SHA-256, serverAuth, SANs from `hostnames`. */
export async function generateSelfSignedCert(options: GenerateCertOptions): Promise<GeneratedCert> {
  const hostnames = normalizeHostnames(options.hostnames);
  if (hostnames.length === 0) throw new Error('a certificate needs at least one hostname');
  const now = Date.now();
  const notBefore = options.notBefore ?? new Date(now - BACKDATE_MS);
  const notAfter = options.notAfter ?? new Date(now + (options.validityDays ?? 365) * DAY_MS);
  if (notAfter.getTime() <= notBefore.getTime()) throw new Error('certificate notAfter must be later than notBefore');
  // Loaded on demand: selfsigned pulls in @peculiar/x509 (slow to load, and large), which a
  // server with operator certificates never needs.
  // A CommonJS package: through `default` (module.exports), which both Node and the dist/ bundle
  // provide; named exports of CommonJS are Node's static guess, and the bundle has none.
  const { generate } = (await import('selfsigned')).default;
  const pems = await generate([{ name: 'commonName', value: options.commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: hostnames.map(subjectAltName) },
    ],
  });
  // X.509 times have one-second precision; report what the certificate actually says.
  return {
    cert: withTrailingNewline(pems.cert),
    key: withTrailingNewline(pems.private),
    notAfter: new Date(Math.floor(notAfter.getTime() / 1000) * 1000),
  };
}

function subjectAltName(name: string): { type: 2; value: string } | { type: 7; ip: string } {
  return isIP(name) !== 0 ? { type: 7, ip: name } : { type: 2, value: name };
}
