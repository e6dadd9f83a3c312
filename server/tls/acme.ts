// Certificates from an ACME CA (Let's Encrypt by default) with acme-client, validated over
// TLS-ALPN-01 (RFC 8737) on armhook's own listening port, so 443 is the only port a VM opens.
// The account key and the certificate live under <data dir>/acme/ (0600); a certificate is
// renewed when a third of its lifetime is left, with back-off on failure, while the current
// certificate (or the dev certificate, before the first one) keeps serving.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import type * as Acme from 'acme-client';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../atomic-write.ts';
import { normalizeHostnames } from './generate.ts';
import { errorText, inspectPair, missingHostnames } from './inspect.ts';
import type { TlsMaterial } from './material.ts';
import type { ServedCertificate } from './served.ts';

export const ACME_ACCOUNT_KEY_FILE = 'account-key.pem';
/** The account's URL at the CA, so later runs use the account instead of registering again. */
export const ACME_ACCOUNT_URL_FILE = 'account-url';
export const ACME_CERT_FILE = 'cert.pem';
export const ACME_KEY_FILE = 'key.pem';
/** Renew once this fraction of the lifetime has passed (a third is left). */
const RENEW_AT_FRACTION = 2 / 3;
/** Node's timers hold at most ~24.8 days; a later renewal is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface AcmeOptions {
  domains: readonly string[];
  email?: string | undefined;
  directoryUrl: string;
  /** PEM CA(s) to trust for the directory, besides the usual roots (a private ACME server). */
  caCert?: string | undefined;
  /** <data dir>/acme */
  dir: string;
  served: ServedCertificate;
  log: Logger;
  /** First wait after a failed attempt, doubled per failure up to `retryMaxMs`. Default 60 s and 6 h. */
  retryInitialMs?: number | undefined;
  retryMaxMs?: number | undefined;
}

/** ARMHOOK_ACME_DOMAINS → DNS names; TLS-ALPN-01 validates neither IP addresses nor wildcards. */
export function parseAcmeDomains(text: string): string[] {
  const names = normalizeHostnames(
    text
      .split(',')
      .map((name) => name.trim())
      .filter(Boolean),
  );
  const unusable = names.filter((name) => isIP(name) !== 0 || name.startsWith('*.'));
  if (names.length === 0) throw new Error('ARMHOOK_ACME_DOMAINS names no DNS name');
  if (unusable.length > 0)
    throw new Error(
      `ARMHOOK_ACME_DOMAINS: ${unusable.join(', ')} cannot be validated over TLS-ALPN-01 (IP addresses and wildcards need another challenge); list DNS names`,
    );
  return names;
}

/** The certificate a previous run stored, when it is usable for `domains` (served at start-up). */
export async function storedAcmeCertificate(dir: string, domains: readonly string[], log: Logger): Promise<TlsMaterial | undefined> {
  const certPath = join(dir, ACME_CERT_FILE);
  const keyPath = join(dir, ACME_KEY_FILE);
  let cert: string;
  let key: string;
  try {
    [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  } catch {
    return undefined;
  }
  const inspection = inspectPair(cert, key);
  if (!inspection.ok) {
    log.warn({ certPath, problem: inspection.detail }, `the stored ACME certificate is not usable (${inspection.detail}); a new one is requested`);
    return undefined;
  }
  const missing = missingHostnames(inspection.leaf, domains);
  if (missing.length > 0) {
    log.info({ certPath, missing }, `the stored ACME certificate does not cover ${missing.join(', ')}; a new one is requested`);
    return undefined;
  }
  return { cert, key, source: 'acme', certPath, keyPath, notAfter: inspection.notAfter, notBefore: inspection.notBefore };
}

/** `armhook check`'s line about ACME: the names, the stored certificate and its renewal. Throws on bad names. */
export async function acmeStatus(options: { domains: string; directoryUrl: string; dir: string; listenPort: number }, log: Logger): Promise<string> {
  const domains = parseAcmeDomains(options.domains);
  const stored = await storedAcmeCertificate(options.dir, domains, log);
  const port = options.listenPort === 443 ? '' : `; armhook listens on ${options.listenPort}, a public CA validates on 443`;
  if (!stored?.notBefore)
    return `ACME for ${domains.join(', ')} from ${options.directoryUrl}: no certificate yet; the dev certificate serves until the first one${port}`;
  const renewAt = new Date(stored.notBefore.getTime() + (stored.notAfter.getTime() - stored.notBefore.getTime()) * RENEW_AT_FRACTION);
  return `ACME for ${domains.join(', ')} from ${options.directoryUrl}: ${stored.certPath} valid until ${stored.notAfter.toISOString()}, renewal due ${renewAt.toISOString()}${port}`;
}

export class AcmeCertificates {
  readonly #opts: AcmeOptions;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #closed = false;
  #running: Promise<void> | undefined;
  #client: Acme.Client | undefined;

  constructor(options: AcmeOptions) {
    this.#opts = options;
    this.#log = options.log;
  }

  get #certPath(): string {
    return join(this.#opts.dir, ACME_CERT_FILE);
  }

  get #keyPath(): string {
    return join(this.#opts.dir, ACME_KEY_FILE);
  }

  /** Schedules the first renewal from the certificate being served (now, when it is not an ACME one). */
  start(): void {
    this.#scheduleFrom(this.#opts.served.current);
  }

  /** Asks for a certificate now (also what the timer does). Resolves when the attempt is over. */
  renewNow(): Promise<void> {
    this.#running ??= this.#attempt().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #scheduleFrom(material: TlsMaterial): void {
    if (material.source !== 'acme' || material.notBefore === undefined) return this.#schedule(0);
    const lifetime = material.notAfter.getTime() - material.notBefore.getTime();
    const renewAt = material.notBefore.getTime() + lifetime * RENEW_AT_FRACTION;
    this.#log.info(
      { notAfter: material.notAfter.toISOString(), renewAt: new Date(renewAt).toISOString() },
      `ACME certificate for ${this.#opts.domains.join(', ')} valid until ${material.notAfter.toISOString()}; renewal at ${new Date(renewAt).toISOString()}`,
    );
    this.#schedule(renewAt - Date.now());
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    const wait = Math.max(0, delayMs);
    this.#timer = setTimeout(
      () => {
        if (wait > MAX_TIMER_MS) this.#schedule(wait - MAX_TIMER_MS);
        else void this.renewNow();
      },
      Math.min(wait, MAX_TIMER_MS),
    );
    this.#timer.unref();
  }

  async #attempt(): Promise<void> {
    const { domains, served } = this.#opts;
    const started = performance.now();
    try {
      const material = await this.#issue();
      if (this.#closed) return;
      this.#failures = 0;
      this.#log.info(
        { domains, directory: this.#opts.directoryUrl, notAfter: material.notAfter.toISOString(), seconds: Math.round(performance.now() - started) / 1000 },
        `ACME: got a certificate for ${domains.join(', ')} from ${this.#opts.directoryUrl}`,
      );
      served.replace(material);
      this.#scheduleFrom(material);
    } catch (err) {
      if (this.#closed) return;
      this.#failures += 1;
      if (/accountDoesNotExist|account.*does not exist/i.test(errorText(err))) await this.#forgetAccount();
      const delay = Math.min(this.#opts.retryMaxMs ?? 6 * 3600_000, (this.#opts.retryInitialMs ?? 60_000) * 2 ** (this.#failures - 1));
      const current = served.current;
      this.#log.error(
        { domains, directory: this.#opts.directoryUrl, err: errorText(err), failures: this.#failures, retryInSeconds: delay / 1000 },
        `ACME: could not get a certificate for ${domains.join(', ')} from ${this.#opts.directoryUrl}: ${errorText(err)}. ` +
          `The ${current.source === 'acme' ? 'current' : current.source.startsWith('dev') ? 'self-signed dev' : current.source} certificate keeps serving (valid until ${current.notAfter.toISOString()}); ` +
          `next attempt in ${delay / 1000} s. Check that the names resolve to this machine and that port 443 reaches armhook.`,
      );
      this.#schedule(delay);
    }
  }

  async #issue(): Promise<TlsMaterial> {
    const acme = await loadAcme(this.#opts.caCert);
    const { dir, domains, served } = this.#opts;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const client = (this.#client ??= await this.#newClient(acme));
    const [key, csr] = await acme.crypto.createCsr({ commonName: domains[0], altNames: [...domains] }, await acme.crypto.createPrivateEcdsaKey());
    const alpnKey = await acme.crypto.createPrivateEcdsaKey();
    const chain = await client.auto({
      csr,
      ...(this.#opts.email ? { email: this.#opts.email } : {}),
      termsOfServiceAgreed: true,
      challengePriority: ['tls-alpn-01'],
      // The CA validates from outside; asking ourselves through the public name proves nothing more
      // (and fails where a VM cannot reach its own public address).
      skipChallengeVerification: true,
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        const type: string = challenge.type; // acme-client's types predate RFC 8737
        if (type !== 'tls-alpn-01') throw new Error(`the CA offered no tls-alpn-01 challenge for ${authz.identifier.value} (got ${type})`);
        const [challengeKey, challengeCert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, alpnKey);
        served.addChallenge(authz.identifier.value, challengeCert.toString(), challengeKey.toString());
      },
      challengeRemoveFn: async (authz) => {
        served.removeChallenge(authz.identifier.value);
      },
    });
    await this.#rememberAccount(client);
    const certText = chain.endsWith('\n') ? chain : `${chain}\n`;
    const keyText = key.toString();
    const inspection = inspectPair(certText, keyText);
    if (!inspection.ok) throw new Error(`the CA's certificate does not fit the key armhook made: ${inspection.detail}`);
    // Key first: a crash in between leaves a pair that doesn't match, which stored() ignores.
    await writeFileAtomic(this.#keyPath, keyText, { mode: 0o600 });
    await writeFileAtomic(this.#certPath, certText, { mode: 0o600 });
    return {
      cert: certText,
      key: keyText,
      source: 'acme',
      certPath: this.#certPath,
      keyPath: this.#keyPath,
      notAfter: inspection.notAfter,
      notBefore: inspection.notBefore,
    };
  }

  /** The CA no longer knows the account (a test CA restarted, an account deactivated): register anew. */
  async #forgetAccount(): Promise<void> {
    this.#client = undefined;
    await rm(join(this.#opts.dir, ACME_ACCOUNT_URL_FILE), { force: true });
  }

  async #newClient(acme: typeof Acme): Promise<Acme.Client> {
    let accountUrl: string | undefined;
    try {
      accountUrl = (await readFile(join(this.#opts.dir, ACME_ACCOUNT_URL_FILE), 'utf8')).trim() || undefined;
    } catch {
      // not registered yet
    }
    return new acme.Client({
      directoryUrl: this.#opts.directoryUrl,
      accountKey: await this.#accountKey(acme),
      ...(accountUrl ? { accountUrl } : {}),
      // Polls of pending orders: from 1 s, at most 10 s apart.
      backoffMin: 1000,
      backoffMax: 10_000,
    });
  }

  async #rememberAccount(client: Acme.Client): Promise<void> {
    const path = join(this.#opts.dir, ACME_ACCOUNT_URL_FILE);
    const url = client.getAccountUrl();
    const known = await readFile(path, 'utf8').catch(() => '');
    if (known.trim() !== url) await writeFileAtomic(path, `${url}\n`, { mode: 0o600 });
  }

  async #accountKey(acme: typeof Acme): Promise<Buffer> {
    const path = join(this.#opts.dir, ACME_ACCOUNT_KEY_FILE);
    try {
      return await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const key = await acme.crypto.createPrivateEcdsaKey();
    await writeFileAtomic(path, key.toString(), { mode: 0o600 });
    this.#log.info({ path }, `ACME: created an account key at ${path} (keep it with backups of the data directory)`);
    return key;
  }
}

/**
 * acme-client, loaded when a certificate is requested (it brings axios and an X.509 library).
 * Its HTTP client is one instance per process: a private CA is added to it, never replacing the
 * usual roots. Its own retries of one request (5 by default, 5 s × attempt apart: over a minute
 * before a network failure surfaces) are cut to 2: armhook's back-off retries the whole order.
 */
async function loadAcme(caCert: string | undefined): Promise<typeof Acme> {
  // CommonJS: through `default`, as in tls/generate.ts (the dist/ bundle has no named exports).
  const acme = (await import('acme-client')).default as typeof Acme;
  const settings = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number; retryDefaultDelay: number } }).acmeSettings;
  if (settings) Object.assign(settings, { retryMaxAttempts: 2, retryDefaultDelay: 1 });
  if (caCert) acme.axios.defaults.httpsAgent = new HttpsAgent({ ca: [...rootCertificates, caCert], keepAlive: false });
  return acme;
}
