/**
 * Every setting armhook has, in one table: its config key, environment variable, CLI flag,
 * type, default and meaning. Parsing, `--help` and the README's table all come from here.
 */
export type SettingType = 'string' | 'integer' | 'size' | 'listen' | 'url' | 'level' | 'spawner' | 'names';

export interface Setting {
  key: string;
  env: string;
  flag: string;
  type: SettingType;
  default: string | number | undefined;
  min?: number;
  max?: number;
  description: string;
}

/** Node's timers hold at most 2^31-1 ms (about 24.8 days); a longer delay would fire at once. */
export const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

// One row per setting, as the README table shows them.
// prettier-ignore
export const SETTINGS = [
  { key: 'listen', env: 'ARMHOOK_LISTEN', flag: '--listen', type: 'listen', default: '127.0.0.1:8443', description: 'host:port to listen on (HTTPS)' },
  { key: 'scriptsDir', env: 'ARMHOOK_SCRIPTS_DIR', flag: '--scripts-dir', type: 'string', default: './scripts', description: 'where hooks live; scripts/vm/create.sh is POST /vm/create' },
  { key: 'dataDir', env: 'ARMHOOK_DATA_DIR', flag: '--data-dir', type: 'string', default: './data', description: 'job records and logs' },
  { key: 'tlsCert', env: 'ARMHOOK_TLS_CERT', flag: '--tls-cert', type: 'string', default: undefined, description: 'PEM certificate (chain); with ARMHOOK_TLS_KEY' },
  { key: 'tlsKey', env: 'ARMHOOK_TLS_KEY', flag: '--tls-key', type: 'string', default: undefined, description: 'PEM private key; with ARMHOOK_TLS_CERT' },
  { key: 'tlsDir', env: 'ARMHOOK_TLS_DIR', flag: '--tls-dir', type: 'string', default: './tls', description: 'where the self-signed dev certificate is generated when no cert/key is set' },
  { key: 'acmeDomains', env: 'ARMHOOK_ACME_DOMAINS', flag: '--acme-domains', type: 'string', default: undefined, description: 'DNS names (comma-separated) to get a certificate for over ACME (TLS-ALPN-01 on the listening port, which must be 443 for a public CA); instead of cert/key' },
  { key: 'acmeEmail', env: 'ARMHOOK_ACME_EMAIL', flag: '--acme-email', type: 'string', default: undefined, description: 'contact address for the ACME account (expiry notices)' },
  { key: 'acmeDirectory', env: 'ARMHOOK_ACME_DIRECTORY', flag: '--acme-directory', type: 'url', default: 'https://acme-v02.api.letsencrypt.org/directory', description: "ACME directory URL (default: Let's Encrypt production)" },
  { key: 'acmeCaFile', env: 'ARMHOOK_ACME_CA_FILE', flag: '--acme-ca-file', type: 'string', default: undefined, description: 'extra CA (PEM) to trust for the ACME server (a private one such as pebble)' },
  { key: 'htpasswd', env: 'ARMHOOK_HTPASSWD', flag: '--htpasswd', type: 'string', default: undefined, description: 'htpasswd file for basic auth (bcrypt, apr1, SHA); with neither it nor bearer tokens armhook listens on loopback only' },
  { key: 'authThreads', env: 'ARMHOOK_AUTH_THREADS', flag: '--auth-threads', type: 'integer', default: 1, min: 1, max: 64, description: 'threads that check passwords (bcrypt), off the event loop' },
  { key: 'authQueue', env: 'ARMHOOK_AUTH_QUEUE', flag: '--auth-queue', type: 'integer', default: 16, min: 1, description: 'password checks running or waiting at once; beyond it 503 with Retry-After, nothing hashed' },
  { key: 'access', env: 'ARMHOOK_ACCESS', flag: '--access', type: 'string', default: undefined, description: 'access file (JSON): which callers may run which hooks and see whose jobs, signed hooks; re-read when it changes; none = every authenticated caller may do everything' },
  { key: 'entraTenant', env: 'ARMHOOK_ENTRA_TENANT', flag: '--entra-tenant', type: 'string', default: undefined, description: 'Entra ID tenant id whose bearer tokens are accepted (callers with their own managed identity); with ARMHOOK_ENTRA_AUDIENCE' },
  { key: 'entraAudience', env: 'ARMHOOK_ENTRA_AUDIENCE', flag: '--entra-audience', type: 'string', default: undefined, description: 'accepted token audiences, comma-separated (an app ID URI or client id)' },
  { key: 'entraAuthority', env: 'ARMHOOK_ENTRA_AUTHORITY', flag: '--entra-authority', type: 'url', default: 'https://login.microsoftonline.com', description: 'Entra ID authority (sovereign clouds); keys come from <authority>/<tenant>/v2.0/.well-known/openid-configuration' },
  { key: 'trustProxy', env: 'ARMHOOK_TRUST_PROXY', flag: '--trust-proxy', type: 'string', default: undefined, description: 'addresses or CIDRs of reverse proxies, comma-separated, whose X-Forwarded-For names the client (failure limits, audit); none = the socket address' },
  { key: 'workers', env: 'ARMHOOK_WORKERS', flag: '--workers', type: 'integer', default: 2, min: 1, description: 'jobs running at once' },
  { key: 'queue', env: 'ARMHOOK_QUEUE', flag: '--queue', type: 'integer', default: 100, min: 0, description: 'jobs waiting for a worker; beyond it 429' },
  { key: 'timeout', env: 'ARMHOOK_TIMEOUT', flag: '--timeout', type: 'integer', default: 3600, min: 1, max: MAX_SECONDS, description: 'default job timeout, seconds' },
  { key: 'killGrace', env: 'ARMHOOK_KILL_GRACE', flag: '--kill-grace', type: 'integer', default: 10, min: 0, max: MAX_SECONDS, description: 'seconds between SIGTERM and SIGKILL of a job\'s process group' },
  { key: 'drainTimeout', env: 'ARMHOOK_DRAIN_TIMEOUT', flag: '--drain-timeout', type: 'integer', default: 30, min: 0, max: MAX_SECONDS, description: 'on SIGTERM, seconds running jobs get to finish before they are stopped' },
  { key: 'retentionDays', env: 'ARMHOOK_RETENTION_DAYS', flag: '--retention-days', type: 'integer', default: 30, min: 0, description: 'finished jobs older than this many days are deleted (0: never by age)' },
  { key: 'retentionMax', env: 'ARMHOOK_RETENTION_MAX', flag: '--retention-max', type: 'integer', default: 1000, min: 1, description: 'at most this many finished jobs are kept, plus up to 1/64 more between batched deletions (15 at 1000)' },
  { key: 'retentionSize', env: 'ARMHOOK_RETENTION_SIZE', flag: '--retention-size', type: 'size', default: 0, description: 'finished jobs are deleted, oldest first, while all jobs\' stored output is larger (bytes, or e.g. 500M, 2G; 0: no limit)' },
  { key: 'bodyLimit', env: 'ARMHOOK_BODY_LIMIT', flag: '--body-limit', type: 'integer', default: 1048576, min: 0, description: 'largest request body (script stdin), bytes' },
  { key: 'maxConnections', env: 'ARMHOOK_MAX_CONNECTIONS', flag: '--max-connections', type: 'integer', default: 1024, min: 1, description: 'connections held at once; more are closed as they arrive, before TLS' },
  { key: 'maxConnectionsPerAddress', env: 'ARMHOOK_MAX_CONNECTIONS_PER_ADDRESS', flag: '--max-connections-per-address', type: 'integer', default: 32, min: 1, description: 'connections held at once from one client address' },
  { key: 'headersTimeout', env: 'ARMHOOK_HEADERS_TIMEOUT', flag: '--headers-timeout', type: 'integer', default: 10, min: 1, max: 3600, description: 'seconds a new connection gets for the TLS handshake and the request line and headers' },
  { key: 'requestTimeout', env: 'ARMHOOK_REQUEST_TIMEOUT', flag: '--request-timeout', type: 'integer', default: 60, min: 1, max: 3600, description: 'seconds a request gets to arrive whole, body included (not the answer: jobs stream as long as they run); at least ARMHOOK_HEADERS_TIMEOUT' },
  { key: 'keepAlive', env: 'ARMHOOK_KEEPALIVE', flag: '--keepalive', type: 'integer', default: 15, min: 1, max: 3600, description: 'seconds between SSE keep-alive comments' },
  { key: 'outputLimit', env: 'ARMHOOK_JSON_OUTPUT_LIMIT', flag: '--json-output-limit', type: 'integer', default: 1048576, min: 1024, description: 'bytes of output included in an Accept: application/json response' },
  { key: 'spawner', env: 'ARMHOOK_SPAWNER', flag: '--spawner', type: 'spawner', default: 'auto', description: 'how scripts start: helper (a small python3 process using posix_spawn), node (child_process via execa), auto (helper when python3 exists)' },
  { key: 'imdsEndpoint', env: 'ARMHOOK_IMDS_ENDPOINT', flag: '--imds-endpoint', type: 'url', default: 'http://169.254.169.254', description: 'instance metadata base URL (token and instance metadata)' },
  { key: 'armEndpoint', env: 'ARMHOOK_ARM_ENDPOINT', flag: '--arm-endpoint', type: 'url', default: 'https://management.azure.com', description: 'Resource Manager base URL (sovereign clouds)' },
  { key: 'armCaFile', env: 'ARMHOOK_ARM_CA_FILE', flag: '--arm-ca-file', type: 'string', default: undefined, description: 'extra CA (PEM) to trust for Resource Manager (Azure Stack Hub)' },
  { key: 'managedIdentityClientId', env: 'ARMHOOK_MANAGED_IDENTITY_CLIENT_ID', flag: '--managed-identity-client-id', type: 'string', default: undefined, description: 'client id of a user-assigned identity; none = system-assigned' },
  { key: 'azConfigTemplate', env: 'ARMHOOK_AZ_CONFIG_TEMPLATE', flag: '--az-config-template', type: 'string', default: undefined, description: 'directory copied into every job\'s private AZURE_CONFIG_DIR (a registered cloud, az defaults); telemetry is off unless its config sets collect_telemetry' },
  { key: 'passEnv', env: 'ARMHOOK_PASS_ENV', flag: '--pass-env', type: 'names', default: undefined, description: 'comma-separated names of variables of armhook\'s environment handed to scripts (a proxy, a CA bundle); no ARMHOOK_* and nothing that changes how programs load' },
  { key: 'logLevel', env: 'ARMHOOK_LOG_LEVEL', flag: '--log-level', type: 'level', default: 'info', description: 'fatal, error, warn, info, debug, trace or silent' },
] as const satisfies readonly Setting[];

export type SettingKey = (typeof SETTINGS)[number]['key'];

/** The README's settings table (test/config/readme.test.ts keeps the README equal to it). */
export function settingsTable(): string {
  const rows = SETTINGS.map(
    (s) => `| \`${s.env}\` | \`${s.flag}\` | \`${s.key}\` | ${s.description} | ${s.default === undefined ? '—' : `\`${String(s.default)}\``} |`,
  );
  return ['| variable | flag | key in `--config` JSON | meaning | default |', '|---|---|---|---|---|', ...rows].join('\n');
}
