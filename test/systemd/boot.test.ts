// The hardened unit under a real systemd: install.sh --root into a container tree (this machine's
// /usr underneath, read-only), boot it with systemd-nspawn, and run a script through armhook as
// the service runs it — sandbox and all (user, capabilities, read-only /etc, hidden /home,
// private /tmp, python).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, cpSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { setPassword } from '../../server/auth/index.ts';
import { freePort } from '../helpers/pebble.ts';

const ROOT = join(import.meta.dirname, '..', '..');

let container: string | undefined;
let nspawn: ChildProcess | undefined;
let output = '';
after(async () => {
  // The test is over: no orderly shutdown needed. Killing the container's init ends its PID
  // namespace (every process in it); nspawn then exits and its mounts go with it.
  if (nspawn && nspawn.exitCode === null) {
    const exited = new Promise((resolve) => nspawn?.once('exit', resolve));
    const init = containerInit();
    if (init) process.kill(Number(init), 'SIGKILL');
    else nspawn.kill('SIGKILL');
    await exited;
  }
  if (container) rmSync(container, { recursive: true, force: true });
});

/** The container's PID 1 (systemd), as a pid of this machine: nspawn's child. */
function containerInit(): string {
  const pid = nspawn?.exitCode === null ? nspawn.pid : undefined;
  if (pid === undefined) return '';
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0] ?? '';
  } catch {
    return '';
  }
}

/** Runs a command inside the booted container (for failure messages). */
function insideContainer(command: string[]): string {
  const init = containerInit();
  if (!init) return '(the container is not running)';
  const result = spawnSync('nsenter', ['-t', init, '-a', ...command], { encoding: 'utf8' });
  return `${result.stdout}${result.stderr}`;
}

function post(port: number, path: string, auth: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', auth, rejectUnauthorized: false, headers: { accept: 'application/json' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function healthy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

test('the unit boots under systemd in a container and runs a script inside its sandbox', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'armhook-nspawn-'));
  container = dir;
  chmodSync(dir, 0o755); // the container's / (mkdtemp makes it 0700: no one but root could enter)
  // A tree systemd-nspawn accepts as an OS root: this machine's /etc, /usr mounted over it.
  for (const link of ['bin', 'lib', 'lib64', 'sbin']) symlinkSync(`usr/${link}`, join(dir, link));
  for (const sub of ['usr', 'var/lib', 'var/log', 'run', 'tmp', 'proc', 'sys', 'dev', 'root', 'home', 'opt']) mkdirSync(join(dir, sub), { recursive: true });
  cpSync('/etc', join(dir, 'etc'), { recursive: true, verbatimSymlinks: true });
  rmSync(join(dir, 'etc/os-release'), { force: true });
  copyFileSync('/usr/lib/os-release', join(dir, 'etc/os-release'));
  rmSync(join(dir, 'etc/machine-id'), { force: true });
  // Only armhook is enabled: none of this machine's own services (databases, cloud-init…).
  for (const entry of readdirSync(join(dir, 'etc/systemd/system'))) {
    if (/\.(wants|requires)$/.test(entry)) rmSync(join(dir, 'etc/systemd/system', entry), { recursive: true, force: true });
  }

  const installed = spawnSync('sh', [join(ROOT, 'systemd/install.sh'), '--root', dir, '--hardlink-modules'], { encoding: 'utf8' });
  assert.equal(installed.status, 0, `${installed.stdout}${installed.stderr}`);
  const gid = Number(/^armhook:x:(\d+):/m.exec(readFileSync(join(dir, 'etc/group'), 'utf8'))?.[1]);
  const port = await freePort();
  const env = join(dir, 'etc/armhook/armhook.env');
  writeFileSync(
    env,
    `${readFileSync(env, 'utf8').replace(/^ARMHOOK_LISTEN=.*$/m, `ARMHOOK_LISTEN=127.0.0.1:${port}`)}ARMHOOK_IMDS_ENDPOINT=http://127.0.0.1:9\n`,
  );
  await setPassword(join(dir, 'etc/armhook/htpasswd'), 'api', 'boot-test-pass', { cost: 4 });
  chownSync(join(dir, 'etc/armhook/htpasswd'), 0, gid);
  chmodSync(join(dir, 'etc/armhook/htpasswd'), 0o640);
  const probe = join(dir, 'etc/armhook/scripts/probe.sh');
  writeFileSync(
    probe,
    [
      '#!/bin/bash',
      '# @param name required pattern=[a-z]+ Who to greet',
      'set -e',
      'echo "hello $name from $(id -un)"',
      't=$(mktemp); echo written > "$t"; echo "tmp: $(cat "$t")"',
      'python3 -c \'import json; print("python", json.dumps({"ok": True}))\'',
      'echo "$(grep CapEff /proc/self/status)"',
      'touch /etc/armhook/nope 2>/dev/null && echo "etc: writable" || echo "etc: read-only"',
      'ls /home >/dev/null 2>&1 && echo "home: visible" || echo "home: hidden"',
      'test -x "$ARMHOOK_BIN" && echo "bin: $ARMHOOK_BIN"',
      '',
    ].join('\n'),
  );
  chownSync(probe, 0, gid);
  chmodSync(probe, 0o750);
  mkdirSync(join(dir, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
  symlinkSync('/etc/systemd/system/armhook.service', join(dir, 'etc/systemd/system/multi-user.target.wants/armhook.service'));

  nspawn = spawn(
    'systemd-nspawn',
    ['-D', dir, `--overlay-ro=/usr:${dir}/usr:/usr`, '--register=no', '--keep-unit', '--console=pipe', '--quiet', '-b', 'systemd.unit=multi-user.target'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  nspawn.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  nspawn.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let up = false;
  for (let i = 0; i < 300 && !up && nspawn.exitCode === null; i++) {
    up = await healthy(port);
    if (!up) await sleep(200);
  }
  assert.ok(up, `armhook did not come up in the container:\n${output.slice(-3000)}\n${insideContainer(['journalctl', '--no-pager', '-n', '60'])}`);

  const res = await post(port, '/probe?name=vm', 'api:boot-test-pass');
  assert.equal(res.status, 200, res.body);
  const record = JSON.parse(res.body) as { status: string; output: string };
  assert.equal(record.status, 'succeeded', record.output);
  assert.match(record.output, /^hello vm from armhook$/m);
  assert.match(record.output, /^tmp: written$/m);
  assert.match(record.output, /^python \{"ok": true\}$/m);
  assert.match(record.output, /^CapEff:\s+0000000000000400$/m, 'CAP_NET_BIND_SERVICE only');
  assert.match(record.output, /^etc: read-only$/m);
  assert.match(record.output, /^home: hidden$/m);
  assert.match(record.output, /^bin: \/opt\/armhook\/bin\/armhook$/m);
});
