// The systemd unit, the installer and the cloud-init file, checked with the tools that run them:
// systemd-analyze (security exposure, verify), systemd/install.sh into a throw-away root, and
// `cloud-init schema`.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const UNIT = join(ROOT, 'systemd', 'armhook.service');
const INSTALL = join(ROOT, 'systemd', 'install.sh');
/** The most `systemd-analyze security` may rate the unit (0 = locked down, 10 = exposed). */
const MAX_EXPOSURE = 3.0;

function run(command: string, args: string[], input?: string): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  assert.equal(result.error, undefined, `${command} must be installed (test/ensure-tools.sh)`);
  return result;
}

test(`the unit's exposure is at most ${MAX_EXPOSURE} and it keeps what jobs need`, () => {
  const result = run('systemd-analyze', ['security', '--offline=true', '--no-pager', UNIT]);
  const exposure = Number(/Overall exposure level for armhook\.service: ([\d.]+)/.exec(result.stdout)?.[1]);
  assert.ok(Number.isFinite(exposure), `no exposure figure in:\n${result.stdout}${result.stderr}`);
  assert.ok(exposure <= MAX_EXPOSURE, `exposure ${exposure} > ${MAX_EXPOSURE}:\n${result.stdout}`);
  const unit = readFileSync(UNIT, 'utf8');
  // SIGTERM to armhook alone, so running jobs drain; V8's JIT needs W+X memory.
  assert.match(unit, /^KillMode=mixed$/m);
  assert.doesNotMatch(unit, /^MemoryDenyWriteExecute=/m);
  // Scripts run az: network, and a writable /tmp.
  assert.doesNotMatch(unit, /^(PrivateNetwork|IPAddressDeny)=/m);
  assert.match(unit, /^RestrictAddressFamilies=.*AF_INET6?\b/m);
  assert.match(unit, /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m);
});

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'armhook-install-'));
});
after(() => rm(root, { recursive: true, force: true }));

function install(...extra: string[]): SpawnSyncReturns<string> {
  const result = run('sh', [INSTALL, '--root', root, '--hardlink-modules', ...extra]);
  assert.equal(result.status, 0, `install.sh ${extra.join(' ')} failed:\n${result.stdout}${result.stderr}`);
  return result;
}

test('install.sh --root installs into a throw-away root, twice, keeping what the operator changed', async () => {
  install();
  const env = join(root, 'etc/armhook/armhook.env');
  const htpasswd = join(root, 'etc/armhook/htpasswd');
  const script = join(root, 'etc/armhook/scripts/mine.sh');
  assert.ok(existsSync(join(root, 'opt/armhook/bin/armhook')));
  assert.ok(existsSync(join(root, 'opt/armhook/dist/main.js')));
  assert.ok(existsSync(join(root, 'opt/armhook/node_modules/node/bin/node')), 'the runtime is installed');
  assert.ok(!existsSync(join(root, 'opt/armhook/node_modules/typescript')), 'dev tools are pruned');
  assert.equal(readlinkSync(join(root, 'usr/local/bin/armhook')), '/opt/armhook/bin/armhook');
  assert.equal(readFileSync(join(root, 'etc/systemd/system/armhook.service'), 'utf8'), readFileSync(UNIT, 'utf8'));
  assert.match(readFileSync(join(root, 'etc/passwd'), 'utf8'), /^armhook:x:\d+:\d+:.*:\/var\/lib\/armhook:\/usr\/sbin\/nologin$/m);
  assert.equal(statSync(env).mode & 0o777, 0o640);
  assert.equal(statSync(join(root, 'etc/armhook')).mode & 0o007, 0, 'settings are not world-readable');

  // The operator's changes, then an upgrade.
  writeFileSync(env, `${readFileSync(env, 'utf8')}ARMHOOK_WORKERS=7\n`);
  writeFileSync(htpasswd, 'api:$2b$04$abcdefghijklmnopqrstuu5BUH7R2mO3Vx8bHoJv1oQyD9uJm1n.W\n');
  writeFileSync(script, '#!/bin/sh\necho mine\n', { mode: 0o750 });
  writeFileSync(join(root, 'opt/armhook/stale-file'), 'from an older version');
  install();
  assert.match(readFileSync(env, 'utf8'), /^ARMHOOK_WORKERS=7$/m);
  assert.match(readFileSync(htpasswd, 'utf8'), /^api:/);
  assert.equal(readFileSync(script, 'utf8'), '#!/bin/sh\necho mine\n');
  assert.ok(!existsSync(join(root, 'opt/armhook/stale-file')), 'the code is replaced as a whole');
  assert.equal(readFileSync(join(root, 'etc/passwd'), 'utf8').match(/^armhook:/gm)?.length, 1);

  // The installed CLI runs on its own runtime.
  const help = run(join(root, 'opt/armhook/bin/armhook'), ['--help']);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /armhook token/);
});

test('systemd-analyze verify accepts the installed unit', async () => {
  // verify needs the targets the unit names: the host's own unit directory stands in for the root's.
  await mkdir(join(root, 'usr/lib/systemd'), { recursive: true });
  if (!existsSync(join(root, 'usr/lib/systemd/system'))) await symlink('/lib/systemd/system', join(root, 'usr/lib/systemd/system'));
  const result = run('systemd-analyze', ['verify', `--root=${root}`, '/etc/systemd/system/armhook.service']);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stderr.trim(), '', 'no warnings (unknown keys are only warnings)');
});

test('install.sh --uninstall removes the code and keeps settings and data; --purge removes those too', async () => {
  install();
  await mkdir(join(root, 'var/lib/armhook/acme'), { recursive: true });
  install('--uninstall');
  assert.ok(!existsSync(join(root, 'opt/armhook')));
  assert.ok(!existsSync(join(root, 'etc/systemd/system/armhook.service')));
  assert.ok(!existsSync(join(root, 'usr/local/bin/armhook')));
  assert.ok(existsSync(join(root, 'etc/armhook/armhook.env')));
  assert.ok(existsSync(join(root, 'var/lib/armhook/acme')));
  install('--uninstall', '--purge');
  assert.ok(!existsSync(join(root, 'etc/armhook')));
  assert.ok(!existsSync(join(root, 'var/lib/armhook')));
});

test('cloud-init.yaml is valid cloud-config and its bootstrap script is valid sh', () => {
  const file = join(ROOT, 'systemd', 'cloud-init.yaml');
  const schema = run('cloud-init', ['schema', '--config-file', file]);
  assert.equal(schema.status, 0, `${schema.stdout}${schema.stderr}`);
  assert.match(schema.stdout, /Valid cloud-config/);
  // cloud-init is Python and brings PyYAML: the same parser reads the embedded script.
  const extract = run('python3', [
    '-c',
    'import sys, yaml\nfor f in yaml.safe_load(open(sys.argv[1]))["write_files"]:\n  if f["path"] == "/usr/local/sbin/armhook-bootstrap": print(f["content"], end="")',
    file,
  ]);
  assert.equal(extract.status, 0, extract.stderr);
  assert.match(extract.stdout, /install\.sh/);
  const syntax = run('sh', ['-n'], extract.stdout);
  assert.equal(syntax.status, 0, syntax.stderr);
});
