import fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessFile, AccessFileError } from './access/index.ts';
import { HtpasswdAuthenticator, type EntraVerifier } from './auth/index.ts';
import type { Server as TlsServer } from 'node:tls';
import { StartupError } from './errors.ts';
import { createAzure, readArmCaFile, type AzureOptions, type AzureService } from './azure/index.ts';
import { isLoopback, listSetting, type Config } from './config/index.ts';
import { azSetupFor, HookCatalog, runScript, SpawnHelper, type AzSetup } from './hooks/index.ts';
import {
  registerAuth,
  loadFingerprintKey,
  FINGERPRINT_KEY_FILE,
  registerAzureRoutes,
  describeHandler,
  registerCatalogRoutes,
  registerErrorHandlers,
  clientErrorHandler,
  ConnectionGuard,
  frameworkErrors,
  registerHealthRoutes,
  registerJobRoutes,
  registerConsoleRoutes,
  registerMetricsRoute,
  registerRequestLog,
  registerRunRoutes,
  type Authenticator,
} from './http/index.ts';
import { DamagedStoreError, importJournal, JobManager, SqliteJobStore } from './jobs/index.ts';
import { createMetrics, type Metrics } from './metrics/index.ts';
import { createTlsService, type TlsService, type TlsServiceOptions } from './tls/index.ts';

/**
 * A private directory (mode 0700) for per-job scratch space such as AZURE_CONFIG_DIR, on a
 * memory filesystem when there is one: systemd's RuntimeDirectory, else /dev/shm, else the temp
 * dir. Cheaper to create and remove than on disk, and az's token caches never touch the disk.
 */
async function createScratchDir(log: Logger): Promise<string> {
  const candidates = [process.env.RUNTIME_DIRECTORY?.split(':')[0], '/dev/shm', tmpdir()];
  for (const base of candidates) {
    if (!base) continue;
    try {
      const dir = await mkdtemp(join(base, `armhook-${process.pid}-`));
      await removeDeadScratchDirs(base, log);
      return dir;
    } catch {
      // not there or not writable: try the next
    }
  }
  throw new StartupError(`cannot create a private scratch directory in ${tmpdir()}; check TMPDIR`);
}

/** Scratch dirs of armhook processes that died without cleaning up (SIGKILL, power loss). */
async function removeDeadScratchDirs(base: string, log: Logger): Promise<void> {
  for (const name of await readdir(base)) {
    const pid = Number(/^armhook-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
      continue; // that process is alive (another armhook on this machine)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPERM') continue;
    }
    await rm(join(base, name), { recursive: true, force: true });
    log.info({ dir: join(base, name) }, 'removed the scratch directory of an armhook process that is gone');
  }
}

export { StartupError };

/** What scripts get from armhook's settings (see AzSetup); refuses start-up when the template is unreadable. */
function createAzSetup(config: Config, armCaCert: string | undefined, scratchDir: string, log: Logger): AzSetup {
  let az: AzSetup;
  try {
    az = azSetupFor(config, armCaCert, scratchDir);
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
  if (az.missingPassEnv.length > 0) {
    log.warn(
      { names: az.missingPassEnv },
      "ARMHOOK_PASS_ENV names variables armhook's environment does not have, so scripts do not get them; set them in the service's environment (systemd: Environment= or EnvironmentFile=) or remove them from ARMHOOK_PASS_ENV",
    );
  }
  return az;
}

export interface AppOptions {
  log: Logger;
  /** Replaces the htpasswd authenticator (tests of other auth paths). */
  authenticator?: Authenticator;
  /** Extra Azure options (tests: fast LRO polling and retries). */
  azure?: Partial<Omit<AzureOptions, 'log'>>;
  /** Extra Entra options (tests: the CA of a loopback fake tenant, a shorter refetch interval). */
  entra?: { ca?: string; refetchIntervalMs?: number };
  /** Failed authentications per address and window before 429 (tests). */
  failureLimit?: { max: number; windowMs: number };
  /** Back-off after a failed ACME attempt (tests: milliseconds instead of minutes). */
  acmeRetry?: TlsServiceOptions['acmeRetry'];
}

/** The bearer-token verifier, when a tenant is configured (jose loads only then). */
async function createEntra(config: Config, log: Logger, extra: AppOptions['entra']): Promise<EntraVerifier | undefined> {
  if (!config.entraTenant) return undefined;
  const { EntraVerifier } = await import('./auth/entra.ts');
  return new EntraVerifier({
    tenant: config.entraTenant,
    audiences: listSetting(config.entraAudience),
    authority: config.entraAuthority,
    log: log.child({ component: 'entra' }),
    ...extra,
  });
}

export interface Armhook {
  app: FastifyInstance;
  jobs: JobManager;
  catalog: HookCatalog;
  azure: AzureService;
  /** The served certificate: reloads, ACME renewals. */
  tls: TlsService;
  /** Listens on the configured address; returns the URL it listens on. */
  listen(): Promise<string>;
  /** Drains jobs (up to the drain timeout) and closes the server. */
  close(): Promise<void>;
}

function refuseSchemas(): never {
  throw new Error("armhook routes declare no fastify schemas; validate with armhook's parameter rules or TypeBox");
}

interface Callers {
  authenticator: Authenticator | undefined;
  /** The htpasswd file armhook opened itself (closed at shutdown). */
  htpasswd: HtpasswdAuthenticator | undefined;
  entra: EntraVerifier | undefined;
  access: AccessFile | undefined;
}

/** Who may call: htpasswd users, Entra bearer tokens, the access file's rules. Refuses an unsafe combination. */
async function openCallers(config: Config, options: AppOptions, log: Logger): Promise<Callers> {
  let authenticator = options.authenticator;
  const htpasswd =
    !authenticator && config.htpasswd
      ? await HtpasswdAuthenticator.open({
          file: config.htpasswd,
          log: log.child({ component: 'auth' }),
          verifyThreads: config.authThreads,
          maxVerifications: config.authQueue,
        })
      : undefined;
  authenticator ??= htpasswd;
  const entra = await createEntra(config, log, options.entra);
  if (!authenticator && !entra && !isLoopback(config.listen.host)) {
    throw new StartupError(
      `refusing to listen on ${config.listen.host}:${config.listen.port} without authentication. ` +
        'Add a user with `armhook passwd /etc/armhook/htpasswd <user>` and set ARMHOOK_HTPASSWD=/etc/armhook/htpasswd, set ARMHOOK_ENTRA_TENANT and ARMHOOK_ENTRA_AUDIENCE for bearer tokens, or listen on 127.0.0.1.',
    );
  }
  let access: AccessFile | undefined;
  if (config.access) {
    try {
      access = await AccessFile.open(config.access, log.child({ component: 'access' }));
    } catch (err) {
      if (err instanceof AccessFileError) throw new StartupError(`ARMHOOK_ACCESS: ${err.message}`);
      throw err;
    }
  }
  if (entra && !access) {
    log.warn(
      { tenant: config.entraTenant },
      'bearer tokens are accepted without an access file: any identity of the tenant that can get a token for ARMHOOK_ENTRA_AUDIENCE may run every hook and see every job. ' +
        'Set ARMHOOK_ACCESS to a file of rules naming the entra:<object id> callers allowed, or require app role assignment on the app registration',
    );
  }

  return { authenticator, htpasswd, entra, access };
}

/** Azure: the identity, ARM clients and typed handlers (ARMHOOK_ARM_CA_FILE read once, for them and for scripts). */
async function openAzure(config: Config, options: AppOptions, log: Logger, metrics: Metrics): Promise<{ azure: AzureService; armCaCert: string | undefined }> {
  let armCaCert: string | undefined;
  if (config.armCaFile) {
    try {
      armCaCert = await readArmCaFile(config.armCaFile);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
  }
  const azure = createAzure({
    imdsEndpoint: config.imdsEndpoint,
    armEndpoint: config.armEndpoint,
    ...(config.managedIdentityClientId ? { managedIdentityClientId: config.managedIdentityClientId } : {}),
    ...(armCaCert ? { armCaCert } : {}),
    onTokenFetched: (source, outcome) => metrics.tokenRefreshes.inc([source, outcome]),
    ...options.azure,
    log,
  });
  return { azure, armCaCert };
}

/** The job store and manager; jobs a previous process left running are marked interrupted. */
async function openJobs(config: Config, log: Logger): Promise<{ store: SqliteJobStore; jobs: JobManager; fingerprintKey: Buffer }> {
  const store = openJobStore(config.dataDir);
  await importJournal(config.dataDir, store, log.child({ component: 'jobs' }));
  const jobs = new JobManager({
    store,
    log: log.child({ component: 'jobs' }),
    workers: config.workers,
    queue: config.queue,
    retentionDays: config.retentionDays,
    retentionMax: config.retentionMax,
    retentionBytes: config.retentionSize,
  });
  const fingerprintKey = await openFingerprintKey(config.dataDir, log);
  const interrupted = await jobs.open();
  if (interrupted.length > 0) log.warn({ jobs: interrupted.map((r) => r.id) }, 'jobs left running by a previous process were marked interrupted');
  return { store, jobs, fingerprintKey };
}

/** The fastify instance: HTTPS with the connection guard's options, raw bodies, no fastify schemas. */
function createFastify(config: Config, log: Logger, tls: TlsService, connections: ConnectionGuard): FastifyInstance {
  // Routes don't care that the server is HTTPS; one plain instance type keeps their signatures simple.
  const app = fastify({
    loggerInstance: log,
    // One line per request comes from registerRequestLog (path only, never the query string).
    logController: new LogController({ disableRequestLogging: true }),
    https: { ...tls.serverOptions, ...connections.serverOptions, requireHostHeader: false },
    requestTimeout: config.requestTimeout * 1000,
    bodyLimit: config.bodyLimit,
    exposeHeadRoutes: true,
    // While draining, run requests get armhook's own 503 (JSON, Retry-After) from the job
    // manager, and job reads keep working so callers can follow their jobs to the end.
    return503OnClosing: false,
    // After the drain, connections still open (a tailer that stopped reading) are closed.
    forceCloseConnections: true,
    clientErrorHandler,
    // X-Forwarded-For names the client only when the socket is one of these proxies.
    ...(config.trustProxy ? { trustProxy: listSetting(config.trustProxy) } : {}),
    frameworkErrors,
    // armhook's routes declare no fastify schemas (parameters are checked by armhook's own rules
    // and TypeBox), so Ajv and fast-json-stringify are never needed: not loading them saves
    // start-up time and memory. A route that ever declares a schema fails loudly at registration.
    schemaController: { compilersFactory: { buildValidator: refuseSchemas, buildSerializer: refuseSchemas } },
  }) as unknown as FastifyInstance;

  // The raw body is the script's stdin, so every body is read as bytes (up to bodyLimit, refused
  // early when Content-Length says it is larger) and parameters are parsed from it afterwards.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  return app;
}

/**
 * Builds the whole server from a config object. Nothing is shared between two instances, so tests
 * start as many as they need. Refuses to build when the config would be unsafe.
 */
/** The certificate armhook serves: files, ACME, or a generated development pair. */
function openTls(config: Config, options: AppOptions, log: Logger): Promise<TlsService> {
  return createTlsService({
    certFile: config.tlsCert,
    keyFile: config.tlsKey,
    devDir: config.tlsDir,
    acme: {
      domains: config.acmeDomains,
      email: config.acmeEmail,
      directoryUrl: config.acmeDirectory,
      caFile: config.acmeCaFile,
      dir: join(config.dataDir, 'acme'),
      listenPort: config.listen.port,
    },
    acmeRetry: options.acmeRetry,
    log: log.child({ component: 'tls' }),
  });
}

function openSpawner(config: Config, log: Logger): { helper: SpawnHelper | undefined; spawnScript: typeof runScript } {
  // Scripts start from a small posix_spawn helper when python3 exists: forking this process per
  // job copies its page tables and stalls the event loop (see server/hooks/spawner.py).
  const helper = config.spawner === 'node' ? undefined : SpawnHelper.create(log.child({ component: 'spawner' }));
  if (config.spawner === 'helper' && !helper)
    throw new StartupError('ARMHOOK_SPAWNER=helper needs /usr/bin/python3; install python3 or set ARMHOOK_SPAWNER=node');
  log.debug({ spawner: helper ? 'helper' : 'node' }, 'script spawner');
  const spawnScript = helper ? helper.run.bind(helper) : runScript;
  return { helper, spawnScript };
}

interface RouteParts {
  log: Logger;
  metrics: Metrics;
  catalog: HookCatalog;
  jobs: JobManager;
  azure: AzureService;
  tls: TlsService;
  fingerprintKey: Buffer;
  az: AzSetup;
  spawnScript: typeof runScript;
  scratchDir: string;
}

/** Every route after authentication: health, catalog, typed handlers, jobs, console, metrics, scripts. */
function registerRoutes(app: FastifyInstance, config: Config, parts: RouteParts): void {
  const { log, metrics, catalog, jobs, azure, tls, fingerprintKey, az, spawnScript, scratchDir } = parts;
  registerHealthRoutes(app, { scriptsDir: config.scriptsDir, azure, accepting: () => jobs.accepting });
  registerCatalogRoutes(app, { catalog, extra: async () => (await azure.loadHandlers()).map(describeHandler) });
  registerAzureRoutes(app, {
    azure,
    jobs,
    log,
    timeout: config.timeout,
    keepAliveMs: config.keepAlive * 1000,
    outputLimit: config.outputLimit,
    fingerprintKey,
  });
  registerJobRoutes(app, { jobs, keepAliveMs: config.keepAlive * 1000 });
  registerConsoleRoutes(app);
  registerMetricsRoute(app, { jobs, metrics, certificateNotAfter: () => tls.notAfter() });
  registerRunRoutes(app, {
    catalog,
    jobs,
    timeout: config.timeout,
    killGraceMs: config.killGrace * 1000,
    keepAliveMs: config.keepAlive * 1000,
    outputLimit: config.outputLimit,
    fingerprintKey,
    azureEnv: () => azure.scriptEnv(),
    az,
    spawn: spawnScript,
    scratchDir,
  });
}

/** Listens, then starts what needs the socket; resolves with the server's URL. */
async function listenOn(app: FastifyInstance, config: Config, tls: TlsService, azure: AzureService): Promise<string> {
  await app.listen({ host: config.listen.host, port: config.listen.port });
  // Certificates change from here on: new files, ACME (whose CA connects to this port).
  tls.start(app.server as unknown as TlsServer);
  // After listen: /healthz answers while the identity library loads (its first use evaluates
  // the SDK's modules on this thread).
  azure.start();
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  return `https://${host}:${port}`;
}

export async function buildApp(config: Config, options: AppOptions): Promise<Armhook> {
  const log = options.log;
  const metrics = createMetrics();
  const { authenticator, htpasswd, entra, access } = await openCallers(config, options, log);

  const catalog = new HookCatalog({ scriptsDir: config.scriptsDir, log: log.child({ component: 'hooks' }) });
  const problems = await catalog.startupProblems();
  if (problems.length > 0) throw new StartupError(problems.join('; '));

  const tls = await openTls(config, options, log);

  const { azure, armCaCert } = await openAzure(config, options, log, metrics);

  const { helper, spawnScript } = openSpawner(config, log);

  const scratchDir = await createScratchDir(log);
  const az = createAzSetup(config, armCaCert, scratchDir, log);

  const { store, jobs, fingerprintKey } = await openJobs(config, log);

  // Caps and deadlines for connections (a storm of idle or slow ones must not exhaust the process).
  const connections = new ConnectionGuard(config, log.child({ component: 'connections' }));
  const app = createFastify(config, log, tls, connections);

  connections.attach(app.server as unknown as HttpsServer);
  registerErrorHandlers(app, { bodyLimit: config.bodyLimit });
  registerRequestLog(app, metrics);
  await registerAuth(app, {
    authenticator,
    entra,
    access,
    ...(options.failureLimit ? { failureLimit: options.failureLimit.max, failureWindowMs: options.failureLimit.windowMs } : {}),
  });
  registerRoutes(app, config, { log, metrics, catalog, jobs, azure, tls, fingerprintKey, az, spawnScript, scratchDir });

  // Age-based retention runs hourly; count- and size-based run as jobs end.
  const pruneTimer = setInterval(() => void jobs.prune(), 3600 * 1000);
  pruneTimer.unref();

  // Jobs drain before the server stops: their streams end when they do.
  app.addHook('preClose', async () => {
    clearInterval(pruneTimer);
    tls.close();
    await jobs.shutdown(config.drainTimeout * 1000);
    await store.close();
    azure.close();
    helper?.close();
    await htpasswd?.close();
    await rm(scratchDir, { recursive: true, force: true });
  });

  return {
    app,
    jobs,
    catalog,
    azure,
    tls,
    listen: () => listenOn(app, config, tls, azure),
    async close() {
      await app.close();
    },
  };
}

/** The key idempotency fingerprints are made with; a data directory armhook cannot write stops the start-up. */
async function openFingerprintKey(dataDir: string, log: Logger): Promise<Buffer> {
  try {
    return await loadFingerprintKey(dataDir, log.child({ component: 'jobs' }));
  } catch (err) {
    throw new StartupError(
      `cannot read or create ${join(dataDir, FINGERPRINT_KEY_FILE)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); make ARMHOOK_DATA_DIR writable by the user armhook runs as`,
    );
  }
}

/** The job database; a damaged one stops the start-up with what to do (armhook never drops jobs by itself). */
function openJobStore(dataDir: string): SqliteJobStore {
  try {
    return new SqliteJobStore({ dataDir });
  } catch (err) {
    if (err instanceof DamagedStoreError) throw new StartupError(err.message);
    throw err;
  }
}
