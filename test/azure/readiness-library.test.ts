// Once a typed handler has loaded the identity library, readiness follows the library: a token
// refresh it fails makes the service not ready until the library gets a token again, even while
// armhook's own plain IMDS request (used before the library loads) would succeed.
// Its own file: the library's token cache is process-wide.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, startAzureEnv, type AzureEnv } from './setup.ts';

let env: AzureEnv;

before(async () => {
  // Shorter than MSAL's 5-minute refresh margin: every library getToken asks IMDS again.
  env = await startAzureEnv({ imds: { tokenLifetimeSeconds: 120 } });
});
after(async () => {
  await env?.close();
});

const libraryRequests = (): number => env.imds.tokenRequests.filter((r) => r.path.endsWith('/')).length;

test('a failure the library reports is cleared only by the library, not by the plain probe', async () => {
  assert.equal(env.imds.tokenRequests[0]?.path, '/metadata/identity/oauth2/token', 'readiness used the plain probe');
  await env.run('azure/whoami', {});
  assert.equal(libraryRequests(), 1, 'the handler loaded the library, which asked for its own token');

  // A 400: MSAL does not retry it by itself (a 500 it retries for seconds).
  env.imds.failToken(400, 'invalid_request', 'library requests fail', 'library');
  await assert.rejects(env.run('azure/whoami', {}), /library requests fail/);
  assert.equal(env.azure.readiness().ready, false);
  // The background retries (every few ms here) go through the library and keep failing; the
  // probe, which would succeed, is not used any more.
  const before = libraryRequests();
  await eventually(() => libraryRequests() >= before + 3, 'three more library attempts');
  assert.equal(env.azure.readiness().ready, false, 'still not ready');
  assert.match(env.azure.readiness().reasons.join('\n'), /library requests fail/);
  assert.ok(
    env.imds.tokenRequests.every((r, i) => i === 0 || r.path.endsWith('/')),
    'no plain probe after the library loaded',
  );

  env.imds.failToken(undefined);
  await env.azure.whenReady();
  assert.equal((await env.run('azure/whoami', {})) !== undefined, true);
});
