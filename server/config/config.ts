import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { derivedConflict, passEnvProblem } from './pass-env.ts';
import { SETTINGS, type Setting } from './settings.ts';

export interface ListenAddress {
  host: string;
  port: number;
}

/** The whole, validated configuration. The app is built from one of these and nothing else. */
export interface Config {
  listen: ListenAddress;
  scriptsDir: string;
  dataDir: string;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  tlsDir: string;
  acmeDomains: string | undefined;
  acmeEmail: string | undefined;
  acmeDirectory: string;
  acmeCaFile: string | undefined;
  htpasswd: string | undefined;
  authThreads: number;
  authQueue: number;
  access: string | undefined;
  entraTenant: string | undefined;
  entraAudience: string | undefined;
  entraAuthority: string;
  trustProxy: string | undefined;
  workers: number;
  queue: number;
  /** seconds */
  timeout: number;
  /** seconds */
  killGrace: number;
  /** seconds */
  drainTimeout: number;
  retentionDays: number;
  retentionMax: number;
  /** bytes; 0: no limit */
  retentionSize: number;
  bodyLimit: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** seconds */
  headersTimeout: number;
  /** seconds */
  requestTimeout: number;
  /** seconds */
  keepAlive: number;
  outputLimit: number;
  spawner: 'auto' | 'helper' | 'node';
  imdsEndpoint: string;
  armEndpoint: string;
  armCaFile: string | undefined;
  managedIdentityClientId: string | undefined;
  /** Copied into every job's AZURE_CONFIG_DIR. */
  azConfigTemplate: string | undefined;
  /** Names of variables of armhook's environment handed to scripts. */
  passEnv: string[];
  logLevel: string;
}

/** Start-up stops with this message: it names the setting and what is wrong with it. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The instance metadata address of every Azure VM (the setting's default). */
export const DEFAULT_IMDS_ENDPOINT = String(SETTINGS.find((s) => s.key === 'imdsEndpoint')?.default);

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function describe(setting: Setting, origin: string): string {
  return origin === 'file' ? `"${setting.key}" in the config file` : origin === 'flag' ? setting.flag : setting.env;
}

export function parseListen(value: string): ListenAddress | undefined {
  const match = /^(?:\[([0-9a-fA-F:]+)\]|([^:]+)):(\d{1,5})$/.exec(value.trim());
  if (!match) return undefined;
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  return { host, port };
}

function coerce(setting: Setting, raw: unknown, origin: string): unknown {
  const name = describe(setting, origin);
  switch (setting.type) {
    case 'integer': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n) || n < (setting.min ?? 0) || (setting.max !== undefined && n > setting.max)) {
        const range = setting.max !== undefined ? ` from ${setting.min ?? 0} to ${setting.max}` : setting.min !== undefined ? ` ≥ ${setting.min}` : '';
        throw new ConfigError(`${name} must be a whole number${range}, got ${JSON.stringify(raw)}`);
      }
      return n;
    }
    case 'size': {
      const match = /^\s*(\d+)\s*([KMGT]?)i?B?\s*$/i.exec(String(raw));
      const n = match ? Number(match[1]) * 1024 ** ['', 'K', 'M', 'G', 'T'].indexOf((match[2] ?? '').toUpperCase()) : NaN;
      if (!Number.isSafeInteger(n) || n < 0)
        throw new ConfigError(`${name} must be a size in bytes, or with K, M, G or T (e.g. 2G), got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'listen': {
      const parsed = typeof raw === 'string' ? parseListen(raw) : undefined;
      if (!parsed) throw new ConfigError(`${name} must be host:port (e.g. 127.0.0.1:8443 or [::1]:8443), got ${JSON.stringify(raw)}`);
      return parsed;
    }
    case 'url': {
      if (typeof raw !== 'string') throw new ConfigError(`${name} must be a URL, got ${JSON.stringify(raw)}`);
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new ConfigError(`${name} must be an absolute http(s) URL, got ${JSON.stringify(raw)}`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${name} must use http or https, got ${JSON.stringify(raw)}`);
      return raw.replace(/\/+$/, '');
    }
    case 'level': {
      if (typeof raw !== 'string' || !LEVELS.includes(raw)) throw new ConfigError(`${name} must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(raw)}`);
      return raw;
    }
    case 'spawner': {
      if (raw !== 'auto' && raw !== 'helper' && raw !== 'node') throw new ConfigError(`${name} must be auto, helper or node, got ${JSON.stringify(raw)}`);
      return raw;
    }
    case 'names': {
      const names = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : undefined;
      if (!names || names.some((n) => typeof n !== 'string'))
        throw new ConfigError(`${name} must be comma-separated variable names, got ${JSON.stringify(raw)}`);
      const list = [...new Set((names as string[]).map((n) => n.trim()).filter(Boolean))];
      for (const n of list) {
        const problem = passEnvProblem(n);
        if (problem) throw new ConfigError(`${name}: ${problem}`);
      }
      return list;
    }
    case 'string': {
      if (typeof raw !== 'string' || raw === '') throw new ConfigError(`${name} must be a non-empty string, got ${JSON.stringify(raw)}`);
      return raw;
    }
  }
}

export interface ConfigSources {
  /** ARMHOOK_* variables are read from here (usually process.env). */
  env?: NodeJS.ProcessEnv;
  /** Values from command-line flags, keyed by setting key (see `configFlagOptions`). */
  flags?: Record<string, unknown>;
  /** Path of a JSON config file (`--config`). */
  configFile?: string;
  /** Relative paths resolve from here. */
  cwd?: string;
  /** Explicit overrides (tests), applied last. */
  overrides?: Partial<Config>;
}

/**
 * Builds the Config from (lowest to highest) defaults, the config file, ARMHOOK_* environment
 * variables and flags. Throws ConfigError naming the first invalid setting.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? {};
  const cwd = sources.cwd ?? process.cwd();
  let file: Record<string, unknown> = {};
  if (sources.configFile) {
    let text: string;
    try {
      text = readFileSync(sources.configFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`--config ${sources.configFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      file = parsed as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`--config ${sources.configFile}: must be a JSON object of settings (${(err as Error).message})`);
    }
    const known = new Set<string>(SETTINGS.map((s) => s.key));
    for (const key of Object.keys(file)) {
      if (!known.has(key)) throw new ConfigError(`--config ${sources.configFile}: unknown setting "${key}" (known: ${[...known].join(', ')})`);
    }
  }

  const values: Record<string, unknown> = {};
  for (const setting of SETTINGS as readonly Setting[]) {
    let value: unknown = setting.default === undefined ? undefined : coerce(setting, setting.default, 'default');
    if (file[setting.key] !== undefined) value = coerce(setting, file[setting.key], 'file');
    const fromEnv = env[setting.env];
    if (fromEnv !== undefined && fromEnv !== '') value = coerce(setting, fromEnv, 'env');
    const fromFlag = sources.flags?.[setting.key];
    if (fromFlag !== undefined) value = coerce(setting, fromFlag, 'flag');
    values[setting.key] = value;
  }
  values.passEnv ??= [];
  for (const key of ['scriptsDir', 'dataDir', 'tlsDir', 'tlsCert', 'tlsKey', 'htpasswd', 'access', 'armCaFile', 'acmeCaFile', 'azConfigTemplate']) {
    if (typeof values[key] === 'string') values[key] = resolve(cwd, values[key]);
  }
  const config = { ...(values as unknown as Config), ...sources.overrides };
  const imdsIsDefault = config.imdsEndpoint === DEFAULT_IMDS_ENDPOINT;
  for (const name of config.passEnv) {
    const conflict = derivedConflict(name, { armCaFile: config.armCaFile, imdsIsDefault, managedIdentityClientId: config.managedIdentityClientId });
    if (conflict) throw new ConfigError(`ARMHOOK_PASS_ENV: ${conflict}`);
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new ConfigError('ARMHOOK_TLS_CERT and ARMHOOK_TLS_KEY go together: set both, or neither for a generated dev certificate');
  }
  if (config.requestTimeout < config.headersTimeout) {
    throw new ConfigError(
      `ARMHOOK_REQUEST_TIMEOUT (${config.requestTimeout} s) must be at least ARMHOOK_HEADERS_TIMEOUT (${config.headersTimeout} s): the whole request can't arrive before its head`,
    );
  }
  if ((config.entraTenant === undefined) !== (config.entraAudience === undefined)) {
    throw new ConfigError(
      'ARMHOOK_ENTRA_TENANT and ARMHOOK_ENTRA_AUDIENCE go together: the tenant whose tokens are accepted, and the audience they must be issued for',
    );
  }
  if (config.entraTenant !== undefined && !isGuid(config.entraTenant)) {
    throw new ConfigError(
      `ARMHOOK_ENTRA_TENANT must be a tenant id (a GUID, as \`az account show --query tenantId\` prints), got ${JSON.stringify(config.entraTenant)}`,
    );
  }
  for (const proxy of listSetting(config.trustProxy)) {
    const [address = '', prefix] = proxy.split('/');
    const bits = isIP(address) === 4 ? 32 : isIP(address) === 6 ? 128 : 0;
    const named = ['loopback', 'linklocal', 'uniquelocal'].includes(proxy);
    if (!named && (bits === 0 || (prefix !== undefined && !(/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits)))) {
      throw new ConfigError(`ARMHOOK_TRUST_PROXY: ${JSON.stringify(proxy)} is not an address, a CIDR (10.0.0.0/8) or loopback/linklocal/uniquelocal`);
    }
  }
  if (!config.entraAuthority.startsWith('https://'))
    throw new ConfigError(`ARMHOOK_ENTRA_AUTHORITY must be an https URL, got ${JSON.stringify(config.entraAuthority)}`);
  if (config.acmeDomains !== undefined && config.tlsCert !== undefined) {
    throw new ConfigError('ARMHOOK_ACME_DOMAINS and ARMHOOK_TLS_CERT/KEY are two ways to get a certificate: set one of them');
  }
  return config;
}

/** A GUID such as a tenant or object id. */
export function isGuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}

/** The audiences of ARMHOOK_ENTRA_AUDIENCE, and the proxies of ARMHOOK_TRUST_PROXY: comma-separated lists. */
export function listSetting(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

/** True when the address only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

/** parseArgs options for every setting's flag, plus --config. */
export function configFlagOptions(): Record<string, { type: 'string' }> {
  const options: Record<string, { type: 'string' }> = { config: { type: 'string' } };
  for (const setting of SETTINGS) options[setting.flag.slice(2)] = { type: 'string' };
  return options;
}

/** Maps parsed flag values (by flag name) to setting keys. */
export function flagsToSettings(parsed: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const setting of SETTINGS) {
    const v = parsed[setting.flag.slice(2)];
    if (v !== undefined) out[setting.key] = v;
  }
  return out;
}

export function settingsHelp(): string {
  return SETTINGS.map((s) => `  ${s.flag.padEnd(30)} ${s.env.padEnd(36)} ${s.description}${s.default !== undefined ? ` (default ${s.default})` : ''}`).join(
    '\n',
  );
}

export { parseArgs };
