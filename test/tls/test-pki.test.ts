import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createTestPki, writeTestPki } from '../helpers/certs.ts';

const run = promisify(execFile);

describe('test PKI helper', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'armhook-tls-pki-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('the CA validates its leaf, which covers the default hostnames with EC keys', async () => {
    const pki = await createTestPki();
    const ca = new X509Certificate(pki.caCert);
    const leaf = new X509Certificate(pki.serverCert);
    assert.equal(ca.ca, true);
    assert.equal(leaf.ca, false);
    assert.equal(leaf.checkIssued(ca), true);
    assert.equal(leaf.verify(ca.publicKey), true);
    assert.equal(leaf.checkPrivateKey(createPrivateKey(pki.serverKey)), true);
    assert.equal(ca.checkPrivateKey(createPrivateKey(pki.caKey)), true);
    assert.equal(leaf.checkHost('localhost'), 'localhost');
    assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(leaf.publicKey.asymmetricKeyType, 'ec');
    assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1']); // serverAuth

    // Another CA does not validate it.
    const stranger = new X509Certificate((await createTestPki()).caCert);
    assert.equal(leaf.verify(stranger.publicKey), false);
  });

  test('custom hostnames, including IPv6', async () => {
    const pki = await createTestPki(['fake-arm.test', '::1']);
    const leaf = new X509Certificate(pki.serverCert);
    assert.equal(leaf.subject, 'CN=fake-arm.test');
    assert.equal(leaf.checkHost('fake-arm.test'), 'fake-arm.test');
    assert.equal(leaf.checkIP('::1'), '::1');
    assert.equal(leaf.checkHost('localhost'), undefined);
  });

  test('writeTestPki writes ca.pem, cert.pem and key.pem (0600) that openssl verifies strictly', async () => {
    const pki = await writeTestPki(root);
    assert.deepEqual([pki.caPath, pki.certPath, pki.keyPath], [join(root, 'ca.pem'), join(root, 'cert.pem'), join(root, 'key.pem')]);
    assert.equal(await readFile(pki.caPath, 'utf8'), pki.caCert);
    assert.equal(await readFile(pki.certPath, 'utf8'), pki.serverCert);
    assert.equal(await readFile(pki.keyPath, 'utf8'), pki.serverKey);
    assert.equal((await stat(pki.keyPath)).mode & 0o777, 0o600);
    // -x509_strict also wants the key identifier extensions RFC 5280 asks for.
    const { stdout } = await run('openssl', ['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', pki.caPath, pki.certPath]);
    assert.equal(stdout.trim(), `${pki.certPath}: OK`);
  });
});
