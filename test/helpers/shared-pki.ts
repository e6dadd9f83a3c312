// The CA and localhost certificate that test servers use unless a test makes its own. Making one
// loads @peculiar/x509, which costs a test process more CPU than starting its server, so it is
// made once per checkout, kept in .cache/test-pki (git-ignored) while it has more than a day
// left, and copied into each server's own directory (a test may replace its server's files).
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestPki, TestPkiPaths } from './certs.ts';

const SHARED_FILE = join(import.meta.dirname, '..', '..', '.cache', 'test-pki', 'pki.json');
const DAY_MS = 24 * 60 * 60 * 1000;

async function readShared(): Promise<TestPki | undefined> {
  try {
    const pki = JSON.parse(await readFile(SHARED_FILE, 'utf8')) as TestPki;
    return new X509Certificate(pki.serverCert).validToDate.getTime() - Date.now() > DAY_MS ? pki : undefined;
  } catch {
    return undefined;
  }
}

/** A new pair, stored for the next processes. Test files that start at once may each make one: every copy is whole (rename), and any of them is as good. */
async function makeShared(): Promise<TestPki> {
  const { createTestPki } = await import('./certs.ts');
  const pki = await createTestPki();
  const partial = `${SHARED_FILE}.${process.pid}`;
  await mkdir(join(SHARED_FILE, '..'), { recursive: true });
  await writeFile(partial, JSON.stringify(pki), { mode: 0o600 });
  await rename(partial, SHARED_FILE);
  return pki;
}

/** Writes a pair to `dir` as ca.pem, cert.pem and key.pem (0600). */
export async function writePki(dir: string, pki: TestPki): Promise<TestPki & TestPkiPaths> {
  const paths: TestPkiPaths = { caPath: join(dir, 'ca.pem'), certPath: join(dir, 'cert.pem'), keyPath: join(dir, 'key.pem') };
  await writeFile(paths.caPath, pki.caCert);
  await writeFile(paths.certPath, pki.serverCert);
  await writeFile(paths.keyPath, pki.serverKey, { mode: 0o600 });
  return { ...pki, ...paths };
}

/** The shared pair (a CA and a certificate for localhost and 127.0.0.1), written to `dir` like writeTestPki. */
export async function writeSharedTestPki(dir: string): Promise<TestPki & TestPkiPaths> {
  return writePki(dir, (await readShared()) ?? (await makeShared()));
}
