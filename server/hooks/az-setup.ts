import { accessSync, constants, copyFileSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { getCACertificates } from 'node:tls';
import { DEFAULT_IMDS_ENDPOINT, type Config } from '../config/index.ts';
import { AppError } from '../errors.ts';

/** What scripts that run `az` (or the Azure identity libraries) need from armhook's settings. */
export interface AzSetupOptions {
  /** armhook's instance metadata base URL, and whether it is the one every Azure VM has. */
  imdsEndpoint: string;
  imdsIsDefault: boolean;
  /** PEM text of ARMHOOK_ARM_CA_FILE. */
  armCaCert: string | undefined;
  /** ARMHOOK_AZ_CONFIG_TEMPLATE: copied into every job's AZURE_CONFIG_DIR. */
  templateDir: string | undefined;
  /** ARMHOOK_PASS_ENV names, and the environment they are read from. */
  passEnv: readonly string[];
  inherit: NodeJS.ProcessEnv;
  /** A private directory that lives as long as this set-up: the CA bundle is written there. */
  scratchDir: string;
}

/** MSI_ENDPOINT for an instance metadata base URL: where az 2.45's `az login --identity` POSTs. */
export function msiEndpointFor(imdsEndpoint: string): string {
  return `${imdsEndpoint}/metadata/identity/oauth2/token`;
}

/** The set-up armhook's settings describe (the server and `armhook run` share it). */
export function azSetupFor(config: Pick<Config, 'imdsEndpoint' | 'azConfigTemplate' | 'passEnv'>, armCaCert: string | undefined, scratchDir: string): AzSetup {
  return AzSetup.create({
    imdsEndpoint: config.imdsEndpoint,
    imdsIsDefault: config.imdsEndpoint === DEFAULT_IMDS_ENDPOINT,
    armCaCert,
    templateDir: config.azConfigTemplate,
    passEnv: config.passEnv,
    inherit: process.env,
    scratchDir,
  });
}

/** az reads its settings from `$AZURE_CONFIG_DIR/config` (INI). */
const CONFIG_FILE = 'config';
const TELEMETRY_OFF = 'collect_telemetry = false';

/** A setting of the az set-up that can't work: the message says what to change. */
export function azSetupError(message: string): AppError {
  return new AppError(500, 'az_setup_invalid', message);
}

/**
 * The part of every script's environment that follows armhook's own settings, and the per-job
 * AZURE_CONFIG_DIR contents. Built once at start-up; `prepareConfigDir` runs at every job start.
 */
export class AzSetup {
  /** Variables for every script: the passed ones, then what armhook's settings imply. */
  readonly env: Readonly<Record<string, string>>;
  /** Names in ARMHOOK_PASS_ENV that armhook's environment does not have (worth a warning). */
  readonly missingPassEnv: readonly string[];
  readonly #templateDir: string | undefined;

  private constructor(env: Record<string, string>, missing: string[], templateDir: string | undefined) {
    this.env = env;
    this.missingPassEnv = missing;
    this.#templateDir = templateDir;
  }

  /** Throws azSetupError's AppError when the template can't be read or the CA bundle can't be written. */
  static create(options: AzSetupOptions): AzSetup {
    if (options.templateDir !== undefined) checkTemplate(options.templateDir);
    const env: Record<string, string> = {};
    const missing: string[] = [];
    for (const name of options.passEnv) {
      const value = options.inherit[name];
      if (value === undefined) missing.push(name);
      else env[name] = value;
    }
    if (!options.imdsIsDefault) {
      // Azure CLI up to 2.6x (msrestazure) takes a POST to MSI_ENDPOINT for `az login --identity`;
      // the identity libraries (and MSAL-based CLIs) take the IMDS host from the second.
      env.MSI_ENDPOINT = msiEndpointFor(options.imdsEndpoint);
      env.AZURE_POD_IDENTITY_AUTHORITY_HOST = options.imdsEndpoint;
    }
    if (options.armCaCert !== undefined) {
      // Python's requests (REQUESTS_CA_BUNDLE) and OpenSSL (SSL_CERT_FILE) replace their trust
      // store with the file they are given, so it holds the system's CAs as well as armhook's.
      const bundle = join(options.scratchDir, 'ca-bundle.pem');
      try {
        writeFileSync(bundle, caBundle(options.armCaCert, options.inherit), { mode: 0o644 });
      } catch (err) {
        throw azSetupError(`cannot write the scripts' CA bundle ${bundle}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
      env.REQUESTS_CA_BUNDLE = bundle;
      env.SSL_CERT_FILE = bundle;
    }
    return new AzSetup(env, missing, options.templateDir);
  }

  /**
   * Fills a job's fresh AZURE_CONFIG_DIR: the template (symbolic links followed, so az never
   * writes into the template), then `[core] collect_telemetry = false` in its config unless the
   * template's config sets collect_telemetry itself. Synchronous: it runs on a memory file system
   * (a few files), where the promise round trips would cost more than the work.
   */
  prepareConfigDir(dir: string): void {
    if (this.#templateDir !== undefined) copyTree(this.#templateDir, dir, 0);
    const file = join(dir, CONFIG_FILE);
    let current: string | undefined;
    if (this.#templateDir !== undefined) {
      try {
        current = readFileSync(file, 'utf8');
      } catch {
        current = undefined;
      }
    }
    const config = withTelemetryDefault(current);
    if (config !== current) writeFileSync(file, config, { mode: 0o600 });
  }
}

/**
 * Removes a job's AZURE_CONFIG_DIR. When az never ran it holds only the config file: two calls in
 * place; otherwise (az's token cache, logs) the recursive removal through the thread pool.
 */
export async function removeConfigDir(dir: string): Promise<void> {
  try {
    unlinkSync(join(dir, CONFIG_FILE));
    rmdirSync(dir);
  } catch {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `config` text with telemetry off, unless it already says what it wants (INI, as Python's configparser reads it). */
export function withTelemetryDefault(config: string | undefined): string {
  if (config === undefined || config.trim() === '') return `[core]\n${TELEMETRY_OFF}\n`;
  const lines = config.split(/\r?\n/);
  let section = '';
  let coreLine = -1;
  for (const [index, line] of lines.entries()) {
    const header = /^\s*\[([^\]]+)\]/.exec(line);
    if (header) {
      section = header[1] ?? '';
      if (section === 'core' && coreLine < 0) coreLine = index;
      continue;
    }
    if (section === 'core' && /^\s*collect_telemetry\s*[=:]/.test(line)) return config;
  }
  // configparser refuses a second [core] section, so the line goes into the existing one.
  if (coreLine >= 0) lines.splice(coreLine + 1, 0, TELEMETRY_OFF);
  else lines.push(...(lines.at(-1) === '' ? [] : ['']), '[core]', TELEMETRY_OFF, '');
  return lines.join('\n');
}

/** Directories nested deeper than this in a template are refused (a link to a parent would never end). */
const MAX_TEMPLATE_DEPTH = 16;

/**
 * Copies a directory's files, following symbolic links, so nothing in the copy points back into
 * the template (node's cpSync keeps nested links as links even with `dereference`).
 */
function copyTree(from: string, to: string, depth: number): void {
  if (depth > MAX_TEMPLATE_DEPTH) throw new Error(`${from} is nested more than ${MAX_TEMPLATE_DEPTH} directories deep (a link to a parent directory?)`);
  for (const name of readdirSync(from)) {
    const source = join(from, name);
    const target = join(to, name);
    const stat = statSync(source);
    if (stat.isDirectory()) {
      mkdirSync(target, { mode: 0o700 });
      copyTree(source, target, depth + 1);
    } else if (stat.isFile()) {
      copyFileSync(source, target);
    }
  }
}

/** The system's CAs, then `extra`. */
function caBundle(extra: string, inherit: NodeJS.ProcessEnv): Buffer {
  const system = systemCaFile(inherit) ?? Buffer.from(`${nodeCaCertificates().join('\n')}\n`);
  return Buffer.concat([system, Buffer.from(`${system.at(-1) === 0x0a ? '' : '\n'}${extra.trim()}\n`)]);
}

/** Where distributions keep the system's CAs as one PEM file (the places Go's crypto/x509 looks). */
const SYSTEM_CA_FILES = [
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu
  '/etc/pki/tls/certs/ca-bundle.crt', // Fedora, RHEL
  '/etc/ssl/ca-bundle.pem', // openSUSE
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', // CentOS, RHEL 7
  '/etc/ssl/cert.pem', // Alpine
];

/**
 * The system's CA file, as bytes: OpenSSL's SSL_CERT_FILE when armhook's environment names one,
 * else the distribution's bundle; the first that holds a certificate. Copied, never parsed: Node's
 * getCACertificates('system') gives the same CAs but parses each one (the bundle and every link in
 * /etc/ssl/certs, so each one several times) into certificates it keeps for the life of the process:
 * start-up time and memory spent on what scripts read from a file anyway.
 */
function systemCaFile(inherit: NodeJS.ProcessEnv): Buffer | undefined {
  for (const file of [inherit['SSL_CERT_FILE'], ...SYSTEM_CA_FILES]) {
    if (!file) continue;
    try {
      const pem = readFileSync(file);
      if (pem.includes('-----BEGIN CERTIFICATE-----')) return pem;
    } catch {
      // not on this distribution
    }
  }
  return undefined;
}

/** Node's view of the system's CAs, where no file holds them; its bundled set where it finds none. */
function nodeCaCertificates(): string[] {
  const system = getCACertificates('system');
  return system.length > 0 ? system : getCACertificates('bundled');
}

function checkTemplate(dir: string): void {
  const setting = `ARMHOOK_AZ_CONFIG_TEMPLATE ${dir}`;
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
    if (isDir) accessSync(dir, constants.R_OK | constants.X_OK);
  } catch (err) {
    throw azSetupError(
      `${setting}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)}); it must be a directory armhook's user can read, e.g. one written with AZURE_CONFIG_DIR=${dir} az cloud register …`,
    );
  }
  if (!isDir) throw azSetupError(`${setting}: not a directory; it must be a directory prepared with AZURE_CONFIG_DIR=${dir} az …`);
  let entry = '.';
  try {
    for (entry of readdirSync(dir, { recursive: true, encoding: 'utf8' })) accessSync(join(dir, entry), constants.R_OK);
  } catch (err) {
    throw azSetupError(
      `${setting}: cannot read ${entry} (${(err as NodeJS.ErrnoException).code ?? String(err)}); every file in it must be readable by armhook's user`,
    );
  }
}
