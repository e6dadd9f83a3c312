import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateSelfSignedCert } from '../../server/tls/generate.ts';
import { TlsMaterialError, loadTlsMaterial } from '../../server/tls/index.ts';
import { LEVEL, captureLog } from '../helpers/log.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

function keyBody(pem: string): string {
  return pem.replace(/-----[^-]+-----/g, '').replace(/\s/g, '');
}

function assertNoKeyMaterial(logText: string, keyPem: string): void {
  const body = keyBody(keyPem);
  for (let i = 0; i + 16 <= body.length; i += 16) {
    assert.ok(!logText.includes(body.slice(i, i + 16)), 'log contains key material');
  }
}

describe('dev certificate', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'armhook-tls-dev-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('is generated once (ECDSA P-256, CN=armhook dev, localhost SANs, 365 days, key 0600) and reused with the same bytes', async () => {
    const devDir = join(root, 'gen', 'nested', 'tls');
    const first = captureLog();
    const m1 = await loadTlsMaterial({ devDir, log: first.log });
    assert.equal(m1.source, 'dev-generated');
    assert.equal(m1.certPath, join(devDir, 'dev-cert.pem'));
    assert.equal(m1.keyPath, join(devDir, 'dev-key.pem'));
    assert.equal(await readFile(m1.certPath, 'utf8'), m1.cert);
    assert.equal(await readFile(m1.keyPath, 'utf8'), m1.key);
    assert.equal((await stat(m1.keyPath)).mode & 0o777, 0o600);

    const x509 = new X509Certificate(m1.cert);
    assert.equal(x509.subject, 'CN=armhook dev');
    assert.equal(x509.checkHost('localhost'), 'localhost');
    assert.equal(x509.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(x509.checkIP('::1'), '::1');
    assert.equal(x509.ca, false);
    assert.equal(x509.publicKey.asymmetricKeyType, 'ec');
    assert.equal(x509.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(x509.validToDate.getTime(), m1.notAfter.getTime());
    const days = (m1.notAfter.getTime() - Date.now()) / DAY_MS;
    assert.ok(days > 364.9 && days <= 365, `validity ${days} days`);

    const info = first.entries().find((e) => e.level === LEVEL.info && e.msg.includes('generated'));
    assert.ok(info, first.text());
    assert.match(info.msg, /self-signed dev certificate/);
    assert.ok(info.msg.includes(m1.certPath));
    assert.match(info.msg, /ARMHOOK_TLS_CERT and ARMHOOK_TLS_KEY/);
    assertNoKeyMaterial(first.text(), m1.key);

    const certBytes = await readFile(m1.certPath);
    const keyBytes = await readFile(m1.keyPath);
    const second = captureLog();
    const m2 = await loadTlsMaterial({ devDir, log: second.log });
    assert.equal(m2.source, 'dev-existing');
    assert.equal(m2.cert, m1.cert);
    assert.equal(m2.key, m1.key);
    assert.equal(m2.notAfter.getTime(), m1.notAfter.getTime());
    assert.deepEqual(await readFile(m1.certPath), certBytes);
    assert.deepEqual(await readFile(m1.keyPath), keyBytes);
    const reuse = second.entries().find((e) => e.level === LEVEL.info);
    assert.ok(reuse, second.text());
    assert.ok(reuse.msg.includes(m1.certPath));
    assert.match(reuse.msg, /ARMHOOK_TLS_CERT/);
    assert.equal(second.entries().filter((e) => e.level >= LEVEL.warn).length, 0);
    assertNoKeyMaterial(second.text(), m1.key);
  });

  test('covers extra hostnames and is regenerated when a new one is asked for', async () => {
    const devDir = join(root, 'hosts');
    const { log } = captureLog();
    const m1 = await loadTlsMaterial({ devDir, log, hostnames: ['Armhook.Example.com', '10.0.0.4'] });
    const x1 = new X509Certificate(m1.cert);
    assert.equal(x1.checkHost('armhook.example.com'), 'armhook.example.com');
    assert.equal(x1.checkIP('10.0.0.4'), '10.0.0.4');
    assert.equal(x1.checkHost('localhost'), 'localhost');

    const m2 = await loadTlsMaterial({ devDir, log, hostnames: ['10.0.0.4'] });
    assert.equal(m2.source, 'dev-existing');

    const m3 = await loadTlsMaterial({ devDir, log, hostnames: ['armhook.example.com', 'vm.internal'] });
    assert.equal(m3.source, 'dev-generated');
    assert.notEqual(m3.cert, m1.cert);
    assert.equal(new X509Certificate(m3.cert).checkHost('vm.internal'), 'vm.internal');
  });

  test('rejects a hostname that cannot go into a certificate', async () => {
    const { log } = captureLog();
    await assert.rejects(loadTlsMaterial({ devDir: join(root, 'bad-host'), log, hostnames: ['not a host'] }), (err: unknown) => {
      assert.ok(err instanceof TlsMaterialError);
      assert.match(err.message, /"not a host" is neither a DNS name nor an IP address/);
      return true;
    });
  });

  test('is replaced when it expires within 7 days', async () => {
    const devDir = join(root, 'expiring');
    await mkdir(devDir);
    const old = await generateSelfSignedCert({
      commonName: 'armhook dev',
      hostnames: ['localhost', '127.0.0.1', '::1'],
      notAfter: new Date(Date.now() + 3 * DAY_MS),
    });
    await writeFile(join(devDir, 'dev-cert.pem'), old.cert);
    await writeFile(join(devDir, 'dev-key.pem'), old.key, { mode: 0o600 });
    const captured = captureLog();
    const m = await loadTlsMaterial({ devDir, log: captured.log });
    assert.equal(m.source, 'dev-generated');
    assert.notEqual(m.cert, old.cert);
    assert.ok(m.notAfter.getTime() - Date.now() > 300 * DAY_MS);
    assert.ok(
      captured.entries().some((e) => e.level === LEVEL.warn && /expires within 7 days/.test(e.msg)),
      captured.text(),
    );
  });

  test('is replaced when the key does not match, a file is garbage, or one file is missing', async () => {
    const { log } = captureLog();
    const a = await generateSelfSignedCert({ commonName: 'armhook dev', hostnames: ['localhost', '127.0.0.1', '::1'] });
    const b = await generateSelfSignedCert({ commonName: 'armhook dev', hostnames: ['localhost', '127.0.0.1', '::1'] });
    const cases: Array<[string, string | undefined, string | undefined, RegExp]> = [
      ['mismatch', a.cert, b.key, /does not belong/],
      ['garbage-cert', 'hello\n', a.key, /BEGIN CERTIFICATE/],
      ['garbage-key', a.cert, 'hello\n', /PRIVATE KEY/],
      ['no-key', a.cert, undefined, /is missing/],
    ];
    for (const [name, cert, key, reason] of cases) {
      const devDir = join(root, name);
      await mkdir(devDir);
      if (cert !== undefined) await writeFile(join(devDir, 'dev-cert.pem'), cert);
      if (key !== undefined) await writeFile(join(devDir, 'dev-key.pem'), key, { mode: 0o600 });
      const captured = captureLog();
      const m = await loadTlsMaterial({ devDir, log: captured.log });
      assert.equal(m.source, 'dev-generated', name);
      assert.ok(new X509Certificate(m.cert).checkPrivateKey(createPrivateKey(m.key)), name);
      const warn = captured.entries().find((e) => e.level === LEVEL.warn);
      assert.ok(warn && reason.test(warn.msg), `${name}: ${captured.text()}`);
      assertNoKeyMaterial(captured.text(), m.key);
      assertNoKeyMaterial(captured.text(), a.key);
      const again = await loadTlsMaterial({ devDir, log });
      assert.equal(again.source, 'dev-existing', name);
    }
  });

  test('a reused key that others can read is set back to 0600', async () => {
    const devDir = join(root, 'lax');
    const { log } = captureLog();
    const m1 = await loadTlsMaterial({ devDir, log });
    await chmod(m1.keyPath, 0o644);
    const captured = captureLog();
    const m2 = await loadTlsMaterial({ devDir, log: captured.log });
    assert.equal(m2.source, 'dev-existing');
    assert.equal((await stat(m2.keyPath)).mode & 0o777, 0o600);
    assert.ok(captured.entries().some((e) => e.level === LEVEL.warn && /0600/.test(e.msg)));
  });

  test('an unusable dev directory gives an error that points to ARMHOOK_TLS_CERT/ARMHOOK_TLS_KEY', async () => {
    const file = join(root, 'a-file');
    await writeFile(file, 'not a directory');
    const { log } = captureLog();
    await assert.rejects(loadTlsMaterial({ devDir: join(file, 'tls'), log }), (err: unknown) => {
      assert.ok(err instanceof TlsMaterialError);
      assert.ok(err.message.includes(join(file, 'tls')));
      assert.match(err.message, /ARMHOOK_TLS_CERT and ARMHOOK_TLS_KEY/);
      return true;
    });
  });
});
