// ARMHOOK_TLS_CERT / ARMHOOK_TLS_KEY re-read when they change (certbot's renewal, the Key Vault VM
// extension), so a renewed certificate is served without a restart. A pair that is broken (half
// written, mismatched, expired) leaves the current one in place, with a log line saying why.
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { loadFileMaterial } from './files.ts';
import { errorText } from './inspect.ts';
import type { TlsMaterial } from './material.ts';

/** Files are written in several steps (cert, then key): changes are read once they settle. */
const SETTLE_MS = 250;
/** Watch events can be missed (a renamed parent, network file systems): look again this often anyway. */
const RECHECK_MS = 5 * 60 * 1000;

export interface CertificateFileWatch {
  close(): void;
}

export function watchCertificateFiles(options: { current: TlsMaterial; log: Logger; onChange: (material: TlsMaterial) => void }): CertificateFileWatch {
  const { log } = options;
  const { certPath, keyPath } = options.current;
  let served = fingerprint(options.current.cert, options.current.key);
  let lastProblem = '';
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const check = async (): Promise<void> => {
    let texts: [string, string];
    try {
      texts = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
    } catch (err) {
      return report(`cannot read it (${errorText(err)})`);
    }
    if (closed || fingerprint(...texts) === served) return;
    let material: TlsMaterial;
    try {
      material = await loadFileMaterial(certPath, keyPath, log);
    } catch (err) {
      return report(errorText(err));
    }
    if (closed) return;
    served = fingerprint(material.cert, material.key);
    lastProblem = '';
    options.onChange(material);
  };
  const report = (problem: string): void => {
    if (problem === lastProblem) return;
    lastProblem = problem;
    log.error(
      { certPath, keyPath, problem },
      `the changed TLS certificate or key is not usable, so new connections keep the current one: ${problem}; fix the files (they are read again when they change)`,
    );
  };
  const schedule = (): void => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => void check(), SETTLE_MS);
    timer.unref();
  };

  // Directories, not files: certbot and the Key Vault extension replace files (rename, symlink).
  const watchers: FSWatcher[] = [];
  for (const dir of new Set([dirname(certPath), dirname(keyPath)])) {
    try {
      const watcher = watch(dir, { persistent: false }, schedule);
      watcher.on('error', (err) =>
        log.warn({ dir, err: errorText(err) }, `stopped watching ${dir} for certificate changes; they are still read every ${RECHECK_MS / 60000} minutes`),
      );
      watchers.push(watcher);
    } catch (err) {
      log.warn({ dir, err: errorText(err) }, `cannot watch ${dir} for certificate changes; they are read every ${RECHECK_MS / 60000} minutes instead`);
    }
  }
  const recheck = setInterval(schedule, RECHECK_MS);
  recheck.unref();

  return {
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(recheck);
      for (const watcher of watchers) watcher.close();
    },
  };
}

function fingerprint(cert: string, key: string): string {
  return createHash('sha256').update(cert).update('\0').update(key).digest('hex');
}
