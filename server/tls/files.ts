// Operator-supplied certificate and key (ARMHOOK_TLS_CERT / ARMHOOK_TLS_KEY).
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { errorText, inspectPair, type PairProblemKind } from './inspect.ts';
import { CERT_SETTING, DAY_MS, KEY_SETTING, TlsMaterialError, type TlsMaterial, type TlsSetting } from './material.ts';

/** Warn at start-up when the certificate expires sooner than this. */
export const EXPIRY_WARN_DAYS = 14;

export async function loadFileMaterial(certFile: string, keyFile: string, log: Logger): Promise<TlsMaterial> {
  const certPath = resolve(certFile);
  const keyPath = resolve(keyFile);
  const [cert, key] = await Promise.all([readSetting(CERT_SETTING, certPath), readSetting(KEY_SETTING, keyPath)]);

  const inspection = inspectPair(cert, key);
  if (!inspection.ok) {
    const settings = settingsFor(inspection.kind);
    const named = settings.map((s) => `${s}=${s === CERT_SETTING ? certPath : keyPath}`).join(' and ');
    throw new TlsMaterialError(`${named}: ${inspection.detail}`, settings);
  }

  const now = Date.now();
  const { notAfter, notBefore } = inspection;
  const subject = inspection.leaf.subject.replace(/\n/g, ', ');
  if (notAfter.getTime() <= now) {
    throw new TlsMaterialError(`${CERT_SETTING}=${certPath}: the certificate (${subject}) expired on ${notAfter.toISOString()}; renew it and restart armhook`, [
      CERT_SETTING,
    ]);
  }
  if (notBefore.getTime() > now) {
    log.warn(
      { certPath, notBefore: notBefore.toISOString() },
      `the TLS certificate ${certPath} is not valid before ${notBefore.toISOString()}; clients will reject it until then (check the system clock)`,
    );
  }
  const daysLeft = (notAfter.getTime() - now) / DAY_MS;
  if (daysLeft < EXPIRY_WARN_DAYS) {
    log.warn(
      { certPath, notAfter: notAfter.toISOString(), daysLeft: Math.floor(daysLeft) },
      `the TLS certificate ${certPath} expires on ${notAfter.toISOString()} (in ${Math.floor(daysLeft)} days); renew it and restart armhook`,
    );
  }
  await warnIfWorldReadable(keyPath, log);
  log.info(
    { certPath, keyPath, subject, notAfter: notAfter.toISOString(), fingerprint256: inspection.fingerprint256, source: 'files' },
    `TLS certificate loaded from ${certPath}`,
  );
  return { cert, key, source: 'files', certPath, keyPath, notAfter };
}

async function readSetting(setting: TlsSetting, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'file not found'
        : code === 'EACCES'
          ? 'permission denied (the user armhook runs as needs read access)'
          : code === 'EISDIR'
            ? 'is a directory, not a PEM file'
            : `cannot be read (${errorText(err)})`;
    throw new TlsMaterialError(`${setting}=${path}: ${why}`, [setting], { cause: err });
  }
}

function settingsFor(kind: PairProblemKind): TlsSetting[] {
  switch (kind) {
    case 'cert-not-pem':
    case 'cert-invalid':
      return [CERT_SETTING];
    case 'key-not-pem':
    case 'key-encrypted':
    case 'key-invalid':
      return [KEY_SETTING];
    case 'mismatch':
    case 'unusable':
      return [KEY_SETTING, CERT_SETTING];
  }
}

async function warnIfWorldReadable(keyPath: string, log: Logger): Promise<void> {
  try {
    const { mode } = await stat(keyPath);
    if ((mode & 0o004) !== 0) {
      log.warn(
        { keyPath, mode: (mode & 0o777).toString(8) },
        `the TLS private key ${keyPath} is readable by every user; chmod 600 (or 640 with a dedicated group)`,
      );
    }
  } catch {
    // It was just read; a stat failure here is not worth failing start-up for.
  }
}
