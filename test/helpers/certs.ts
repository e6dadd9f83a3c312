// Test PKI: a throw-away CA and a server certificate it signed, for the ARM fake and for tests
// that need clients to verify the server properly (node `ca:`, NODE_EXTRA_CA_CERTS, curl --cacert).
//
// Built with @peculiar/x509 directly rather than `selfsigned`: selfsigned can sign with a CA but
// cannot add the Subject/Authority Key Identifier extensions that RFC 5280 requires in a chain
// (OpenSSL's -x509_strict and Python >= 3.13's default context reject chains without them).
import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  PemConverter,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { writePki } from './shared-pki.ts';

export interface TestPki {
  /** PEM CA certificate: give it to clients as their trust anchor. */
  caCert: string;
  /** PEM PKCS#8 CA private key, for tests that need to sign more certificates. */
  caKey: string;
  /** PEM server (leaf) certificate signed by the CA. */
  serverCert: string;
  /** PEM PKCS#8 private key of the server certificate. */
  serverKey: string;
}

export interface TestPkiPaths {
  /** ca.pem */
  caPath: string;
  /** cert.pem (the server certificate) */
  certPath: string;
  /** key.pem (mode 0600) */
  keyPath: string;
}

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

async function newKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  return `${PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY')}\n`;
}

function serial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive
  return Buffer.from(bytes).toString('hex');
}

/** A CA and a leaf server certificate for `hostnames` (DNS names or IPs) signed by it. ECDSA P-256, valid 30 days. */
export async function createTestPki(hostnames: readonly string[] = ['localhost', '127.0.0.1']): Promise<TestPki> {
  const notBefore = new Date(Date.now() - HOUR_MS);
  const notAfter = new Date(Date.now() + 30 * DAY_MS);
  const [caKeys, leafKeys] = await Promise.all([newKeyPair(), newKeyPair()]);

  const ca = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: 'CN=armhook test CA',
      notBefore,
      notAfter,
      keys: caKeys,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature, true),
        await SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );

  const leaf = await X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: `CN=${hostnames[0] ?? 'localhost'}`,
      issuer: ca.subject,
      notBefore,
      notAfter,
      publicKey: leafKeys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth]),
        new SubjectAlternativeNameExtension(hostnames.map((h) => ({ type: isIP(h) !== 0 ? 'ip' : 'dns', value: h }))),
        await SubjectKeyIdentifierExtension.create(leafKeys.publicKey, false, webcrypto),
        await AuthorityKeyIdentifierExtension.create(caKeys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );

  return {
    caCert: `${ca.toString('pem')}\n`,
    caKey: await privateKeyPem(caKeys.privateKey),
    serverCert: `${leaf.toString('pem')}\n`,
    serverKey: await privateKeyPem(leafKeys.privateKey),
  };
}

/** createTestPki, written to `dir` as ca.pem, cert.pem and key.pem (0600). */
export async function writeTestPki(dir: string, hostnames?: readonly string[]): Promise<TestPki & TestPkiPaths> {
  return writePki(dir, await createTestPki(hostnames));
}
