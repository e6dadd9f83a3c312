// Parsing and checking a PEM certificate (chain) and its private key, without logging or
// throwing: callers decide whether a problem is fatal (operator files) or means "regenerate"
// (the dev certificate).
import { X509Certificate, createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';

export type PairProblemKind = 'cert-not-pem' | 'cert-invalid' | 'key-not-pem' | 'key-encrypted' | 'key-invalid' | 'mismatch' | 'unusable';

export type PairInspection =
  { ok: true; leaf: X509Certificate; notBefore: Date; notAfter: Date; fingerprint256: string } | { ok: false; kind: PairProblemKind; detail: string };

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const KEY_BEGIN = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;

/** The PEM CERTIFICATE blocks in `pem`, in order (leaf first in a chain file). */
export function certificateBlocks(pem: string): string[] {
  return pem.match(CERT_BLOCK) ?? [];
}

/**
 * Checks that `certPem` holds one or more PEM certificates (leaf first), `keyPem` an unencrypted
 * PEM private key, that the key belongs to the leaf, and that node:tls accepts the pair.
 */
export function inspectPair(certPem: string, keyPem: string): PairInspection {
  const blocks = certificateBlocks(certPem);
  if (blocks.length === 0) {
    return {
      ok: false,
      kind: 'cert-not-pem',
      detail: 'no "-----BEGIN CERTIFICATE-----" block found (a PEM certificate is expected; convert DER with `openssl x509 -inform der`)',
    };
  }
  const certs: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(block));
    } catch (err) {
      return { ok: false, kind: 'cert-invalid', detail: `certificate #${i + 1} in the file cannot be parsed (${errorText(err)})` };
    }
  }
  const leaf = certs[0];
  if (leaf === undefined) return { ok: false, kind: 'cert-not-pem', detail: 'no certificate found' };

  if (!KEY_BEGIN.test(keyPem)) {
    return { ok: false, kind: 'key-not-pem', detail: 'no "-----BEGIN PRIVATE KEY-----" block found (a PEM private key is expected)' };
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(keyPem) || /Proc-Type:\s*4,ENCRYPTED/.test(keyPem)) {
    return {
      ok: false,
      kind: 'key-encrypted',
      detail: 'the private key is encrypted with a passphrase; armhook needs an unencrypted key (protect it with file permissions, e.g. mode 0600)',
    };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    return { ok: false, kind: 'key-invalid', detail: `the private key cannot be parsed (${errorText(err)})` };
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(key);
  } catch {
    matches = false;
  }
  if (!matches) {
    return { ok: false, kind: 'mismatch', detail: `the private key does not belong to the certificate (subject ${leaf.subject.replace(/\n/g, ', ')})` };
  }
  try {
    createSecureContext({ cert: certPem, key: keyPem, minVersion: 'TLSv1.2' });
  } catch (err) {
    return { ok: false, kind: 'unusable', detail: `node:tls refuses the certificate and key (${errorText(err)})` };
  }
  return {
    ok: true,
    leaf,
    notBefore: leaf.validFromDate,
    notAfter: leaf.validToDate,
    fingerprint256: createHash('sha256')
      .update(leaf.raw)
      .digest('hex')
      .replace(/(..)(?!$)/g, '$1:')
      .toUpperCase(),
  };
}

/** The names the certificate does not cover (DNS names must be listed exactly; IPs match by address). */
export function missingHostnames(leaf: X509Certificate, hostnames: readonly string[]): string[] {
  const dnsNames = new Set(
    (leaf.subjectAltName ?? '')
      .split(', ')
      .filter((entry) => entry.startsWith('DNS:'))
      .map((entry) => entry.slice(4).toLowerCase()),
  );
  return hostnames.filter((name) => (isIP(name) !== 0 ? leaf.checkIP(name) === undefined : !dnsNames.has(name)));
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
