// What scripts get from armhook's settings: the passed variables, MSI_ENDPOINT and the CA bundle,
// and the contents of every job's AZURE_CONFIG_DIR (the template, telemetry off by default).
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AppError } from '../../server/errors.ts';
import { AzSetup, removeConfigDir, withTelemetryDefault, type AzSetupOptions } from '../../server/hooks/index.ts';
import { createTestPki } from '../helpers/certs.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'armhook-az-setup-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let dirs = 0;
async function newDir(name: string): Promise<string> {
  const dir = join(root, `${name}-${++dirs}`);
  await mkdir(dir, { mode: 0o700 });
  return dir;
}

async function setup(options: Partial<AzSetupOptions> = {}): Promise<AzSetup> {
  return AzSetup.create({
    imdsEndpoint: 'http://169.254.169.254',
    imdsIsDefault: true,
    armCaCert: undefined,
    templateDir: undefined,
    passEnv: [],
    inherit: {},
    scratchDir: await newDir('scratch'),
    ...options,
  });
}

test("on a plain Azure VM scripts get nothing extra, and each job's config has telemetry off", async () => {
  const az = await setup();
  assert.deepEqual(az.env, {});
  const job = await newDir('job');
  az.prepareConfigDir(job);
  assert.deepEqual(readdirSync(job), ['config']);
  assert.equal(readFileSync(join(job, 'config'), 'utf8'), '[core]\ncollect_telemetry = false\n');
});

test("passed variables come from armhook's environment; names it lacks are reported, not invented", async () => {
  const az = await setup({
    passEnv: ['HTTPS_PROXY', 'no_proxy', 'CORP_CA'],
    inherit: { HTTPS_PROXY: 'http://proxy.corp:3128', no_proxy: '127.0.0.1,.corp', OTHER: 'x' },
  });
  assert.deepEqual(az.env, { HTTPS_PROXY: 'http://proxy.corp:3128', no_proxy: '127.0.0.1,.corp' });
  assert.deepEqual(az.missingPassEnv, ['CORP_CA']);
});

test('a non-default IMDS endpoint gives MSI_ENDPOINT (az) and AZURE_POD_IDENTITY_AUTHORITY_HOST (identity libraries)', async () => {
  const az = await setup({ imdsEndpoint: 'http://127.0.0.1:4567', imdsIsDefault: false });
  assert.deepEqual(az.env, {
    MSI_ENDPOINT: 'http://127.0.0.1:4567/metadata/identity/oauth2/token',
    AZURE_POD_IDENTITY_AUTHORITY_HOST: 'http://127.0.0.1:4567',
  });
});

test("an ARM CA gives REQUESTS_CA_BUNDLE and SSL_CERT_FILE: one bundle of the system's CAs plus that CA", async () => {
  const pki = await createTestPki();
  const scratchDir = await newDir('scratch');
  const az = await setup({ armCaCert: pki.caCert, scratchDir });
  const bundle = az.env.REQUESTS_CA_BUNDLE ?? assert.fail('no REQUESTS_CA_BUNDLE');
  assert.ok(bundle?.startsWith(scratchDir), 'the bundle lives in the private scratch directory');
  assert.equal(az.env.SSL_CERT_FILE, bundle);
  const pems = readFileSync(bundle, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  assert.ok(pems.length > 10, `the system's CAs are in it (${pems.length} certificates)`);
  const last = new X509Certificate(pems.at(-1) ?? '');
  assert.equal(last.fingerprint256, new X509Certificate(pki.caCert).fingerprint256, 'and so is the ARM CA');
  for (const pem of pems) new X509Certificate(pem); // every block parses
});

test("the bundle's system CAs come from OpenSSL's SSL_CERT_FILE when armhook's environment names one, copied as they are", async () => {
  const system = await createTestPki();
  const arm = await createTestPki();
  const scratchDir = await newDir('scratch');
  const certFile = join(scratchDir, 'corporate.pem');
  // No newline at its end: the ARM CA still starts a line of its own.
  writeFileSync(certFile, `# the corporate CA\n${system.caCert.trim()}`);
  const az = await setup({ armCaCert: arm.caCert, scratchDir, inherit: { SSL_CERT_FILE: certFile } });
  const bundle = readFileSync(az.env.SSL_CERT_FILE ?? assert.fail('no SSL_CERT_FILE'), 'utf8');
  assert.equal(bundle, `# the corporate CA\n${system.caCert.trim()}\n${arm.caCert.trim()}\n`);
});

test('an SSL_CERT_FILE that holds no certificate is passed over for the system bundle', async () => {
  const pki = await createTestPki();
  const scratchDir = await newDir('scratch');
  const empty = join(scratchDir, 'empty.pem');
  writeFileSync(empty, '# nothing here\n');
  const az = await setup({ armCaCert: pki.caCert, scratchDir, inherit: { SSL_CERT_FILE: empty } });
  const pems = readFileSync(az.env.SSL_CERT_FILE ?? assert.fail('no SSL_CERT_FILE'), 'utf8').match(/-----BEGIN CERTIFICATE-----/g) ?? [];
  assert.ok(pems.length > 10, `the system's CAs are in it (${pems.length} certificates)`);
});

test('the template is copied into each job (links followed), and its config gains telemetry off', async () => {
  const template = await newDir('template');
  writeFileSync(join(template, 'config'), '[cloud]\nname = stack\n\n[defaults]\nlocation = local\n');
  writeFileSync(join(template, 'clouds.config'), '[stack]\nendpoint_resource_manager = https://management.local.azurestack.external/\n');
  mkdirSync(join(template, 'nested'));
  writeFileSync(join(template, 'nested', 'file'), 'nested');
  const outside = join(await newDir('outside'), 'shared.json');
  writeFileSync(outside, '{"shared": true}');
  symlinkSync(outside, join(template, 'linked.json'));
  const az = await setup({ templateDir: template });

  const job = await newDir('job');
  az.prepareConfigDir(job);
  assert.equal(readFileSync(join(job, 'config'), 'utf8'), '[cloud]\nname = stack\n\n[defaults]\nlocation = local\n\n[core]\ncollect_telemetry = false\n');
  assert.equal(readFileSync(join(job, 'clouds.config'), 'utf8'), readFileSync(join(template, 'clouds.config'), 'utf8'));
  assert.equal(readFileSync(join(job, 'nested', 'file'), 'utf8'), 'nested');
  // A copy, not a link: az writing to the job's files never changes the template or what it links to.
  writeFileSync(join(job, 'linked.json'), 'changed by a job');
  assert.equal(readFileSync(outside, 'utf8'), '{"shared": true}');
  assert.equal(readFileSync(join(template, 'config'), 'utf8'), '[cloud]\nname = stack\n\n[defaults]\nlocation = local\n', 'the template is unchanged');

  // The template is read at each job start: an edit applies to the next job without a restart.
  writeFileSync(join(template, 'config'), '[core]\noutput = table\n');
  const next = await newDir('job');
  az.prepareConfigDir(next);
  assert.equal(readFileSync(join(next, 'config'), 'utf8'), '[core]\ncollect_telemetry = false\noutput = table\n');

  await removeConfigDir(job);
  await removeConfigDir(next);
  assert.ok(!existsSync(job) && !existsSync(next));
});

test("withTelemetryDefault: the template's own collect_telemetry wins; one [core] section, never two", () => {
  assert.equal(withTelemetryDefault(undefined), '[core]\ncollect_telemetry = false\n');
  assert.equal(withTelemetryDefault(''), '[core]\ncollect_telemetry = false\n');
  const on = '[core]\ncollect_telemetry = true\n';
  assert.equal(withTelemetryDefault(on), on);
  const colon = '[cloud]\nname = x\n[core]\n  collect_telemetry: yes\n';
  assert.equal(withTelemetryDefault(colon), colon);
  assert.equal(withTelemetryDefault('[core]\noutput = json'), '[core]\ncollect_telemetry = false\noutput = json');
  // collect_telemetry in another section is not the core setting.
  assert.equal(withTelemetryDefault('[other]\ncollect_telemetry = true\n'), '[other]\ncollect_telemetry = true\n\n[core]\ncollect_telemetry = false\n');
});

test('a template that is missing, not a directory or unreadable stops start-up with a message naming it', async (t) => {
  await assert.rejects(setup({ templateDir: join(root, 'nope') }), (err: Error) => {
    assert.ok(err instanceof AppError && err.code === 'az_setup_invalid');
    assert.match(err.message, /ARMHOOK_AZ_CONFIG_TEMPLATE .*nope: cannot read it \(ENOENT\)/);
    return true;
  });
  const file = join(await newDir('t'), 'file');
  writeFileSync(file, '');
  await assert.rejects(setup({ templateDir: file }), /ARMHOOK_AZ_CONFIG_TEMPLATE .*: not a directory/);
  if (process.getuid?.() === 0) {
    t.diagnostic('running as root: unreadable files cannot be simulated');
    return;
  }
  const template = await newDir('template');
  writeFileSync(join(template, 'config'), '[core]\n');
  await chmod(join(template, 'config'), 0o000);
  await assert.rejects(setup({ templateDir: template }), /cannot read config \(EACCES\)/);
});
