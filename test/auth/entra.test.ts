// The bearer-token verifier's key handling against the loopback fake tenant: keys are fetched
// once and cached, an unknown key id triggers one refetch (a rotated key is then accepted), and
// never more than one fetch per refetch interval, whatever callers send.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
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
    (err: unknown) => err instanceof TokenError && /signing key/.test(err.message),
  );
  assert.equal(tenant.requests.keys - keysBefore, 2, 'one more refetch for the unknown key, not a loop');
});

test('within the refetch interval (a minute) unknown key ids never reach the tenant again', async () => {
  const v = verifier();
  await v.verify(await tenant.token());
  const keysBefore = tenant.requests.keys;
  const rotated = tenant.newKey();
  for (let i = 0; i < 50; i++) await assert.rejects(v.verify(await tenant.token(undefined, { key: rotated })), TokenError);
  assert.equal(tenant.requests.keys, keysBefore, 'no fetch within the interval');
});

test("a tenant that cannot be reached is asked at most once per interval, and its failure is armhook's (not counted against callers)", async () => {
  const v = new EntraVerifier({ tenant: tenant.tenant, audiences: [tenant.audience], authority: 'https://127.0.0.1:9', log: captureLog().log, ca: pki.caCert });
  for (let i = 0; i < 5; i++) await assert.rejects(v.verify(await tenant.token()), (err: unknown) => err instanceof TokenError && err.ours);
  assert.equal(v.fetches, 1);
});
