// Configuration: defaults < config file < ARMHOOK_* environment < flags; invalid values stop
// start-up with a message naming the setting.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, isLoopback, loadConfig } from '../../server/config/index.ts';

test('defaults are the documented ones', () => {
  const config = loadConfig({ env: {}, cwd: '/srv/armhook' });
  assert.deepEqual(config.listen, { host: '127.0.0.1', port: 8443 });
  assert.equal(config.scriptsDir, '/srv/armhook/scripts');
  assert.equal(config.dataDir, '/srv/armhook/data');
  assert.equal(config.workers, 2);
  assert.equal(config.queue, 100);
  assert.equal(config.timeout, 3600);
  assert.equal(config.imdsEndpoint, 'http://169.254.169.254');
  assert.equal(config.armEndpoint, 'https://management.azure.com');
  assert.equal(config.htpasswd, undefined);
  assert.equal(config.managedIdentityClientId, undefined);
});

test('file < environment < flags', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'armhook-config-'));
  const file = join(dir, 'armhook.json');
  await writeFile(file, JSON.stringify({ workers: 3, queue: 7, timeout: 60 }));
  const config = loadConfig({ configFile: file, env: { ARMHOOK_QUEUE: '8', ARMHOOK_TIMEOUT: '70' }, flags: { timeout: '80' } });
  assert.equal(config.workers, 3);
  assert.equal(config.queue, 8);
  assert.equal(config.timeout, 80);
});

test('invalid values name the setting they came from', async () => {
  const cases: Array<[Parameters<typeof loadConfig>[0], RegExp]> = [
    [{ env: { ARMHOOK_WORKERS: 'many' } }, /ARMHOOK_WORKERS must be a whole number/],
    [{ env: { ARMHOOK_WORKERS: '0' } }, /ARMHOOK_WORKERS/],
    [{ env: { ARMHOOK_LISTEN: 'localhost' } }, /ARMHOOK_LISTEN must be host:port/],
    [{ env: { ARMHOOK_ARM_ENDPOINT: 'ftp://x' } }, /ARMHOOK_ARM_ENDPOINT must use http or https/],
    [{ env: { ARMHOOK_TIMEOUT: '3000000' } }, /ARMHOOK_TIMEOUT must be a whole number from 1 to 2147483/],
    [{ env: { ARMHOOK_LOG_LEVEL: 'loud' } }, /ARMHOOK_LOG_LEVEL must be one of/],
    [{ env: { ARMHOOK_SPAWNER: 'fork' } }, /ARMHOOK_SPAWNER must be auto, helper or node/],
    [{ env: { ARMHOOK_TLS_CERT: '/x.pem' } }, /ARMHOOK_TLS_CERT and ARMHOOK_TLS_KEY go together/],
    [{ flags: { workers: 'x' } }, /--workers must be a whole number/],
  ];
  for (const [sources, message] of cases)
    assert.throws(
      () => loadConfig(sources),
      (err: unknown) => err instanceof ConfigError && message.test(err.message),
      String(message),
    );
  const dir = await mkdtemp(join(tmpdir(), 'armhook-config-'));
  const file = join(dir, 'bad.json');
  await writeFile(file, JSON.stringify({ wokers: 3 }));
  assert.throws(() => loadConfig({ configFile: file }), /unknown setting "wokers"/);
  await writeFile(file, '[1]');
  assert.throws(() => loadConfig({ configFile: file }), /must be a JSON object/);
  assert.throws(() => loadConfig({ configFile: join(dir, 'missing.json') }), /cannot read it \(ENOENT\)/);
});

test('IPv6 listen addresses and loopback detection', () => {
  assert.deepEqual(loadConfig({ env: { ARMHOOK_LISTEN: '[::1]:9443' } }).listen, { host: '::1', port: 9443 });
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.equal(isLoopback(host), true, host);
  for (const host of ['0.0.0.0', '::', '10.0.0.4', 'runner.example.com']) assert.equal(isLoopback(host), false, host);
});
