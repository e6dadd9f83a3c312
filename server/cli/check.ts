import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessFileError, loadAccessFile, signatureWarnings } from '../access/index.ts';
import { HtpasswdAuthenticator } from '../auth/index.ts';
import { createAzure, readArmCaFile } from '../azure/index.ts';
import { isLoopback, listSetting, type Config } from '../config/index.ts';
import { azSetupFor, HookCatalog } from '../hooks/index.ts';
import type { Logger } from '../log/index.ts';
import { acmeStatus, loadTlsMaterial } from '../tls/index.ts';

/** `armhook check`: everything start-up would refuse, and more, as a list. Non-zero on problems. */
export async function check(config: Config, parentLog: Logger): Promise<number> {
  // The report is the output; the log only carries errors.
  const log = parentLog.child({}, { level: 'error' });
  const problems: string[] = [];
  const ok = (line: string): void => {
    process.stdout.write(`ok    ${line}\n`);
  };
  const fail = (line: string): void => {
    problems.push(line);
    process.stdout.write(`FAIL  ${line}\n`);
  };
  ok(`config: listen ${config.listen.host}:${config.listen.port}, scripts ${config.scriptsDir}, data ${config.dataDir}`);

  const catalog = new HookCatalog({ scriptsDir: config.scriptsDir, log });
  const startup = await catalog.startupProblems();
  for (const p of startup) fail(p);
  if (startup.length === 0) {
    const entries = await catalog.list();
    for (const entry of entries) if (entry.kind === 'invalid') fail(`hook /${entry.path}: ${entry.error}`);
    ok(`scripts: ${entries.filter((e) => e.kind === 'script').length} hooks`);
  }

  try {
    if (config.acmeDomains) {
      const acme = { domains: config.acmeDomains, directoryUrl: config.acmeDirectory, dir: join(config.dataDir, 'acme'), listenPort: config.listen.port };
      ok(`tls: ${await acmeStatus(acme, log)}`);
    } else {
      const tls = await loadTlsMaterial({ certFile: config.tlsCert, keyFile: config.tlsKey, devDir: config.tlsDir, log });
      ok(`tls: ${tls.source} ${tls.certPath}, valid until ${tls.notAfter.toISOString()}`);
    }
  } catch (err) {
    fail(`tls: ${(err as Error).message}`);
  }

  if (config.htpasswd) {
    try {
      const auth = await HtpasswdAuthenticator.open({ file: config.htpasswd, log });
      ok(`auth: ${auth.users().length} users in ${config.htpasswd}`);
    } catch (err) {
      fail(`auth: ${(err as Error).message}`);
    }
  } else if (config.entraTenant) {
    ok('auth: no htpasswd file (bearer tokens only)');
  } else if (!isLoopback(config.listen.host)) {
    fail(
      `auth: listening on ${config.listen.host} needs ARMHOOK_HTPASSWD (add a user with \`armhook passwd <file> <user>\`) or ARMHOOK_ENTRA_TENANT and ARMHOOK_ENTRA_AUDIENCE`,
    );
  } else {
    ok('auth: none (loopback only)');
  }
  if (config.entraTenant) {
    const { EntraVerifier } = await import('../auth/entra.ts');
    const verifier = new EntraVerifier({ tenant: config.entraTenant, audiences: listSetting(config.entraAudience), authority: config.entraAuthority, log });
    const what = `bearer tokens: tenant ${config.entraTenant}, audience ${config.entraAudience ?? ''}`;
    try {
      const keys = await verifier.signingKeys();
      ok(`${what}; ${keys.count} signing key(s) from ${keys.jwksUri}`);
    } catch (err) {
      fail(
        `${what}: cannot get the tenant's signing keys from ${config.entraAuthority} (${(err as Error).message}); check ARMHOOK_ENTRA_AUTHORITY, DNS and outbound HTTPS`,
      );
    }
  }
  if (config.access) {
    try {
      const policy = await loadAccessFile(config.access);
      ok(`access: ${policy.ruleCount} rule(s), ${policy.signatures.length} signature(s) in ${config.access}`);
      for (const warning of signatureWarnings(policy)) process.stdout.write(`WARN  access: ${warning}\n`);
    } catch (err) {
      if (!(err instanceof AccessFileError)) throw err;
      for (const problem of err.problems) fail(`access: ${config.access}: ${problem}`);
    }
  }
  await checkAzure(config, log, { ok, fail });

  process.stdout.write(problems.length === 0 ? 'armhook check: all good\n' : `armhook check: ${problems.length} problem(s)\n`);
  return problems.length === 0 ? 0 : 1;
}

/** The Azure lines: the ARM CA file, then one attempt (no background retries) at metadata, a token and one call to Resource Manager. */
async function checkAzure(config: Config, log: Logger, report: { ok: (line: string) => void; fail: (line: string) => void }): Promise<void> {
  const { ok, fail } = report;
  let armCaCert: string | undefined;
  if (config.armCaFile) {
    try {
      armCaCert = await readArmCaFile(config.armCaFile);
    } catch (err) {
      fail((err as Error).message);
    }
  }
  await checkScriptSetup(config, armCaCert, ok, fail);
  const azure = createAzure({
    imdsEndpoint: config.imdsEndpoint,
    armEndpoint: config.armEndpoint,
    ...(config.managedIdentityClientId ? { managedIdentityClientId: config.managedIdentityClientId } : {}),
    ...(armCaCert ? { armCaCert } : {}),
    log,
  });
  try {
    const result = await azure.check();
    // Each step has its own verdict: a 403 from ARM is one problem, not three.
    for (const line of result.lines) {
      if (line.skipped) process.stdout.write(`skip  azure: ${line.text}\n`);
      else (line.ok ? ok : fail)(`azure: ${line.text}`);
    }
    if (!result.ok && !result.lines.some((l) => !l.ok)) fail('azure: not ready');
  } finally {
    azure.close();
  }
}

/** What scripts get from armhook's settings, built as the server builds it (in a throw-away directory). */
async function checkScriptSetup(config: Config, armCaCert: string | undefined, ok: (line: string) => void, fail: (line: string) => void): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'armhook-check-'));
  try {
    const az = azSetupFor(config, armCaCert, scratch);
    for (const name of az.missingPassEnv) fail(`ARMHOOK_PASS_ENV: ${name} is not set in this environment, so scripts would not get it`);
    const names = Object.keys(az.env);
    const template = config.azConfigTemplate ? `, AZURE_CONFIG_DIR from ${config.azConfigTemplate}` : '';
    ok(`script environment: ${names.length > 0 ? names.join(', ') : 'no variables'} from armhook's settings${template}`);
  } catch (err) {
    fail((err as Error).message);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
