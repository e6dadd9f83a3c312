// ARMHOOK_PASS_ENV: which variables of armhook's environment scripts may get, checked at start-up.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../server/config/index.ts';

test('ARMHOOK_PASS_ENV takes comma-separated names (from the environment, a flag or the config file list)', () => {
  assert.deepEqual(loadConfig({ env: {} }).passEnv, []);
  assert.deepEqual(loadConfig({ env: { ARMHOOK_PASS_ENV: 'HTTPS_PROXY, https_proxy,no_proxy,,CORP_CA_DIR,HTTPS_PROXY' } }).passEnv, [
    'HTTPS_PROXY',
    'https_proxy',
    'no_proxy',
    'CORP_CA_DIR',
  ]);
  assert.deepEqual(loadConfig({ env: {}, flags: { passEnv: 'REQUESTS_CA_BUNDLE' } }).passEnv, ['REQUESTS_CA_BUNDLE']);
});

test("names that would leak armhook's settings, change how programs load, or that armhook sets itself are refused", () => {
  const refused: Array<[string, RegExp]> = [
    ['ARMHOOK_HTPASSWD', /ARMHOOK_PASS_ENV: ARMHOOK_HTPASSWD is armhook's own setting/],
    ['LD_PRELOAD', /LD_PRELOAD changes how programs load or start/],
    ['LD_LIBRARY_PATH', /changes how programs load/],
    ['NODE_OPTIONS', /NODE_OPTIONS changes how programs load/],
    ['PYTHONPATH', /changes how programs load/],
    ['BASH_ENV', /changes how programs load/],
    ['BASH_FUNC_x%%', /is not a variable name/],
    ['GLIBC_TUNABLES', /changes how programs load/],
    ['AZURE_CONFIG_DIR', /armhook sets AZURE_CONFIG_DIR for every job itself/],
    ['my_token', /lower case, like parameters/],
    ['A-B', /"A-B" is not a variable name/],
  ];
  for (const [name, message] of refused) {
    assert.throws(
      () => loadConfig({ env: { ARMHOOK_PASS_ENV: `HTTPS_PROXY,${name}` } }),
      (err: Error) => err instanceof ConfigError && message.test(err.message),
      name,
    );
  }
});

test("a name armhook derives from its own settings can't be passed as well", () => {
  assert.throws(
    () => loadConfig({ env: { ARMHOOK_PASS_ENV: 'REQUESTS_CA_BUNDLE', ARMHOOK_ARM_CA_FILE: '/etc/armhook/arm-ca.pem' } }),
    /ARMHOOK_PASS_ENV: scripts get REQUESTS_CA_BUNDLE from ARMHOOK_ARM_CA_FILE/,
  );
  assert.throws(
    () => loadConfig({ env: { ARMHOOK_PASS_ENV: 'MSI_ENDPOINT', ARMHOOK_IMDS_ENDPOINT: 'http://127.0.0.1:50342' } }),
    /scripts get MSI_ENDPOINT from ARMHOOK_IMDS_ENDPOINT/,
  );
  assert.throws(
    () => loadConfig({ env: { ARMHOOK_PASS_ENV: 'AZURE_CLIENT_ID', ARMHOOK_MANAGED_IDENTITY_CLIENT_ID: '11111111-2222-3333-4444-555555555555' } }),
    /scripts get AZURE_CLIENT_ID from ARMHOOK_MANAGED_IDENTITY_CLIENT_ID/,
  );
  // With the default IMDS, no ARM CA and a system-assigned identity, armhook derives none of these.
  assert.deepEqual(loadConfig({ env: { ARMHOOK_PASS_ENV: 'REQUESTS_CA_BUNDLE,MSI_ENDPOINT,AZURE_CLIENT_ID' } }).passEnv, [
    'REQUESTS_CA_BUNDLE',
    'MSI_ENDPOINT',
    'AZURE_CLIENT_ID',
  ]);
});
