// The self-signed development certificate, kept in <devDir>/dev-cert.pem and dev-key.pem:
// reused while valid, otherwise (re)generated.
import { mkdir, readFile, stat, chmod } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_DEV_HOSTNAMES, DEV_COMMON_NAME, generateSelfSignedCert, normalizeHostnames } from './generate.ts';
import { writeFileAtomic } from '../atomic-write.ts';
import { errorText, inspectPair, missingHostnames } from './inspect.ts';
import { CERT_SETTING, DAY_MS, KEY_SETTING, TlsMaterialError, type TlsMaterial } from './material.ts';

export const DEV_CERT_FILE = 'dev-cert.pem';
export const DEV_KEY_FILE = 'dev-key.pem';
/** An existing dev certificate that expires sooner than this is replaced. */
export const DEV_RENEW_WITHIN_DAYS = 7;
export const DEV_VALIDITY_DAYS = 365;

export interface DevCertOptions {
  devDir: string;
  log: Logger;
  /** Extra DNS names / IP addresses, on top of localhost, 127.0.0.1 and ::1. */
  hostnames?: readonly string[] | undefined;
}

type Existing = { usable: true; cert: string; key: string; notAfter: Date } | { usable: false; present: boolean; reason: string };

export async function loadDevMaterial(options: DevCertOptions): Promise<TlsMaterial> {
  const { log } = options;
  const devDir = resolve(options.devDir);
  const certPath = resolve(devDir, DEV_CERT_FILE);
  const keyPath = resolve(devDir, DEV_KEY_FILE);
  let hostnames: string[];
  try {
    hostnames = normalizeHostnames([...DEFAULT_DEV_HOSTNAMES, ...(options.hostnames ?? [])]);
  } catch (err) {
    throw new TlsMaterialError(`dev certificate: ${errorText(err)}`, [], { cause: err });
  }
  const productionHint = `for production set ${CERT_SETTING} and ${KEY_SETTING} to a certificate and key issued by a CA your clients trust`;

  try {
    await mkdir(devDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new TlsMaterialError(
      `cannot create the dev certificate directory ${devDir} (${errorText(err)}); make it writable for armhook, or ${productionHint}`,
      [],
      { cause: err },
    );
  }

  const existing = await readExisting(certPath, keyPath, hostnames);
  if (existing.usable) {
    await tightenKeyMode(keyPath, log);
    log.info(
      { certPath, notAfter: existing.notAfter.toISOString(), source: 'dev-existing' },
      `using the self-signed dev certificate at ${certPath}; clients must trust it explicitly (e.g. curl --cacert ${certPath}); ${productionHint}`,
    );
    return { cert: existing.cert, key: existing.key, source: 'dev-existing', certPath, keyPath, notAfter: existing.notAfter };
  }
  if (existing.present) {
    log.warn({ certPath, reason: existing.reason }, `replacing the self-signed dev certificate at ${certPath}: ${existing.reason}`);
  }

  const generated = await generateSelfSignedCert({ commonName: DEV_COMMON_NAME, hostnames, validityDays: DEV_VALIDITY_DAYS });
  try {
    // Key first: a crash in between leaves a pair that doesn't match, which the next start replaces.
    await writeFileAtomic(keyPath, generated.key, { mode: 0o600 });
    await writeFileAtomic(certPath, generated.cert, { mode: 0o644 });
  } catch (err) {
    throw new TlsMaterialError(`cannot write the dev certificate to ${devDir} (${errorText(err)}); make it writable for armhook, or ${productionHint}`, [], {
      cause: err,
    });
  }
  log.info(
    { certPath, keyPath, hostnames, notAfter: generated.notAfter.toISOString(), source: 'dev-generated' },
    `generated a self-signed dev certificate at ${certPath}; clients must trust it explicitly (e.g. curl --cacert ${certPath}); ${productionHint}`,
  );
  return { cert: generated.cert, key: generated.key, source: 'dev-generated', certPath, keyPath, notAfter: generated.notAfter };
}

async function readExisting(certPath: string, keyPath: string, hostnames: readonly string[]): Promise<Existing> {
  const [cert, key] = await Promise.all([readOptional(certPath), readOptional(keyPath)]);
  if (cert.missing && key.missing) return { usable: false, present: false, reason: 'absent' };
  if (cert.text === undefined) return { usable: false, present: true, reason: `${certPath} ${cert.missing ? 'is missing' : `cannot be read (${cert.error})`}` };
  if (key.text === undefined) return { usable: false, present: true, reason: `${keyPath} ${key.missing ? 'is missing' : `cannot be read (${key.error})`}` };
  const inspection = inspectPair(cert.text, key.text);
  if (!inspection.ok) return { usable: false, present: true, reason: inspection.detail };
  const now = Date.now();
  if (inspection.notBefore.getTime() > now) {
    return { usable: false, present: true, reason: `it is not valid before ${inspection.notBefore.toISOString()}` };
  }
  if (inspection.notAfter.getTime() - now < DEV_RENEW_WITHIN_DAYS * DAY_MS) {
    return { usable: false, present: true, reason: `it expires within ${DEV_RENEW_WITHIN_DAYS} days (${inspection.notAfter.toISOString()})` };
  }
  const missing = missingHostnames(inspection.leaf, hostnames);
  if (missing.length > 0) return { usable: false, present: true, reason: `it does not cover ${missing.join(', ')}` };
  return { usable: true, cert: cert.text, key: key.text, notAfter: inspection.notAfter };
}

async function readOptional(path: string): Promise<{ text?: string; missing: boolean; error?: string }> {
  try {
    return { text: await readFile(path, 'utf8'), missing: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { missing: true };
    return { missing: false, error: errorText(err) };
  }
}

async function tightenKeyMode(keyPath: string, log: Logger): Promise<void> {
  try {
    const { mode } = await stat(keyPath);
    if ((mode & 0o077) === 0) return;
    await chmod(keyPath, 0o600);
    log.warn({ keyPath, previousMode: (mode & 0o777).toString(8) }, `the dev private key ${keyPath} was readable by others; set its mode to 0600`);
  } catch (err) {
    log.warn({ keyPath, err: errorText(err) }, `could not check or fix the mode of the dev private key ${keyPath}`);
  }
}
