// The bearer-token verifier's key handling against the loopback fake tenant: keys are fetched
// once and cached, an unknown key id triggers one refetch (a rotated key is then accepted), and
// never more than one fetch per refetch interval, whatever callers send.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { EntraVerifier } from '../../server/auth/entra.ts';
import { TokenError } from '../../server/auth/index.ts';
import { startEntraFake, type EntraFake } from '../fakes/entra.ts';
import { createTestPki, type TestPki } from '../helpers/certs.ts';
import { captureLog } from '../helpers/log.ts';

let pki: TestPki;
let tenant: EntraFake;

before(async () => {
  pki = await createTestPki(['127.0.0.1']);
  tenant = await startEntraFake({ cert: pki.serverCert, key: pki.serverKey });
});
after(() => tenant.close());

const verifier = (refetchIntervalMs?: number): EntraVerifier =>
  new EntraVerifier({
    tenant: tenant.tenant,
    audiences: [tenant.audience],
    authority: tenant.url,
    log: captureLog().log,
    ca: pki.caCert,
    ...(refetchIntervalMs !== undefined ? { refetchIntervalMs } : {}),
  });

test('keys are fetched once (discovery + JWKS) and cached for every later token', async () => {
  const before = { ...tenant.requests };
  const v = verifier();
  const oid = randomUUID();
  for (let i = 0; i < 20; i++) assert.deepEqual((await v.verify(await tenant.token(oid))).oid, oid);
  assert.equal(tenant.requests.discovery - before.discovery, 1);
  assert.equal(tenant.requests.keys - before.keys, 1);
});

test('an unknown key id is fetched again once: a key published since then is accepted, a never-published one refused', async () => {
  const v = verifier(0);
  await v.verify(await tenant.token());
  const keysBefore = tenant.requests.keys;
  const rotated = tenant.newKey();
  assert.ok((await v.verify(await tenant.token(undefined, { key: rotated }))).oid);
  assert.equal(tenant.requests.keys - keysBefore, 1, 'one refetch for the new key');
  await assert.rejects(
    v.verify(await tenant.token(undefined, { key: tenant.newKey(false) })),
    // The set fetched for this very token lacks the key: the caller's failure (counted).
    (err: unknown) => err instanceof TokenError && /signing key/.test(err.message) && !err.ours,
  );
  assert.equal(tenant.requests.keys - keysBefore, 2, 'one more refetch for the unknown key, not a loop');
});

test('within the refetch interval (a minute) unknown key ids never reach the tenant again', async () => {
  const v = verifier();
  await v.verify(await tenant.token());
  const keysBefore = tenant.requests.keys;
  const rotated = tenant.newKey();
  for (let i = 0; i < 50; i++)
    await assert.rejects(
      v.verify(await tenant.token(undefined, { key: rotated })),
      // Our cached set may just be behind the tenant: armhook's refusal, with when to retry (not counted).
      (err: unknown) => err instanceof TokenError && err.ours && /not one of the tenant's keys fetched \d+ s ago.*retry in \d+ s/.test(err.message),
    );
  assert.equal(tenant.requests.keys, keysBefore, 'no fetch within the interval');
});

test("a tenant that cannot be reached is asked at most once per interval, and its failure is armhook's (not counted against callers)", async () => {
  const v = new EntraVerifier({ tenant: tenant.tenant, audiences: [tenant.audience], authority: 'https://127.0.0.1:9', log: captureLog().log, ca: pki.caCert });
  for (let i = 0; i < 5; i++) await assert.rejects(v.verify(await tenant.token()), (err: unknown) => err instanceof TokenError && err.ours);
  assert.equal(v.fetches, 1);
});

test("keys that cannot be fetched (the key set's address refuses) are armhook's failure, also when asked again within the interval", async () => {
  // A tenant whose OpenID configuration names a key set nobody serves.
  const discovery = createServer({ cert: pki.serverCert, key: pki.serverKey }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jwks_uri: 'https://127.0.0.1:9/keys' }));
  });
  await new Promise<void>((resolve) => discovery.listen(0, '127.0.0.1', resolve));
  try {
    const authority = `https://127.0.0.1:${(discovery.address() as AddressInfo).port}`;
    const v = new EntraVerifier({ tenant: tenant.tenant, audiences: [tenant.audience], authority, log: captureLog().log, ca: pki.caCert });
    for (let i = 0; i < 3; i++)
      await assert.rejects(
        v.verify(await tenant.token()),
        (err: unknown) => err instanceof TokenError && err.ours && /signing keys are not available right now; try again in \d+ s/.test(err.message),
      );
    assert.equal(v.fetches, 2, 'discovery once, the keys once');
  } finally {
    discovery.close();
  }
});
