import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateSelfSignedCert } from '../../server/tls/generate.ts';
import { TlsMaterialError, loadTlsMaterial } from '../../server/tls/index.ts';
import { writeTestPki, type TestPki, type TestPkiPaths } from '../helpers/certs.ts';
import { LEVEL, captureLog } from '../helpers/log.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Asserts a TlsMaterialError whose message matches every pattern. */
function tlsError(...patterns: RegExp[]): (err: unknown) => true {
  return (err: unknown) => {
    assert.ok(err instanceof TlsMaterialError, `not a TlsMaterialError: ${String(err)}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  };
}

describe('ARMHOOK_TLS_CERT / ARMHOOK_TLS_KEY files', () => {
  let root: string;
  let pki: TestPki & TestPkiPaths;
  let other: TestPki & TestPkiPaths;
  let n = 0;
  const devDir = (): string => join(root, `dev-${n++}`);
  async function file(name: string, content: string | Buffer, mode = 0o600): Promise<string> {
    const path = join(root, name);
    await writeFile(path, content, { mode });
    return path;
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'armhook-tls-files-'));
    await mkdir(join(root, 'a'));
    await mkdir(join(root, 'b'));
    [pki, other] = await Promise.all([writeTestPki(join(root, 'a')), writeTestPki(join(root, 'b'))]);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('both files: loaded as given, notAfter from the certificate, info log without key material', async () => {
    const captured = captureLog();
    const m = await loadTlsMaterial({ certFile: pki.certPath, keyFile: pki.keyPath, devDir: devDir(), log: captured.log });
    assert.equal(m.source, 'files');
    assert.equal(m.cert, pki.serverCert);
    assert.equal(m.key, pki.serverKey);
    assert.equal(m.certPath, pki.certPath);
    assert.equal(m.keyPath, pki.keyPath);
    assert.equal(m.notAfter.getTime(), new X509Certificate(pki.serverCert).validToDate.getTime());
    const entries = captured.entries();
    assert.equal(entries.filter((e) => e.level >= LEVEL.warn).length, 0, captured.text());
    assert.ok(entries.some((e) => e.level === LEVEL.info && e.msg.includes(pki.certPath)));
    const body = pki.serverKey.replace(/-----[^-]+-----|\s/g, '');
    assert.ok(!captured.text().includes(body.slice(10, 40)));
  });

  test("a chain file (leaf then intermediate/CA) is accepted; notAfter is the leaf's", async () => {
    const chain = await file('chain.pem', pki.serverCert + pki.caCert, 0o644);
    const { log } = captureLog();
    const m = await loadTlsMaterial({ certFile: chain, keyFile: pki.keyPath, devDir: devDir(), log });
    assert.equal(m.cert, pki.serverCert + pki.caCert);
    assert.equal(m.notAfter.getTime(), new X509Certificate(pki.serverCert).validToDate.getTime());
  });

  test('only one of the two settings: an error saying both are needed', async () => {
    const { log } = captureLog();
    await assert.rejects(
      loadTlsMaterial({ certFile: pki.certPath, devDir: devDir(), log }),
      tlsError(/ARMHOOK_TLS_CERT is set but ARMHOOK_TLS_KEY is not/, /both are needed/),
    );
    await assert.rejects(
      loadTlsMaterial({ keyFile: pki.keyPath, devDir: devDir(), log }),
      tlsError(/ARMHOOK_TLS_KEY is set but ARMHOOK_TLS_CERT is not/, /both are needed/),
    );
  });

  test('empty strings count as not set (dev certificate)', async () => {
    const { log } = captureLog();
    const m = await loadTlsMaterial({ certFile: '', keyFile: '', devDir: devDir(), log });
    assert.equal(m.source, 'dev-generated');
  });

  test('a missing or unreadable file is named by its setting', async () => {
    const { log } = captureLog();
    const missing = join(root, 'nope.pem');
    await assert.rejects(
      loadTlsMaterial({ certFile: missing, keyFile: pki.keyPath, devDir: devDir(), log }),
      tlsError(/^ARMHOOK_TLS_CERT=\S*nope\.pem: file not found$/),
    );
    await assert.rejects(
      loadTlsMaterial({ certFile: pki.certPath, keyFile: missing, devDir: devDir(), log }),
      tlsError(/^ARMHOOK_TLS_KEY=\S*nope\.pem: file not found$/),
    );
    await assert.rejects(loadTlsMaterial({ certFile: root, keyFile: pki.keyPath, devDir: devDir(), log }), tlsError(/^ARMHOOK_TLS_CERT=.*is a directory/));
  });

  test('content that is not PEM is named by its setting', async () => {
    const { log } = captureLog();
    const text = await file('text.pem', 'hello\n');
    const der = await file('cert.der', new X509Certificate(pki.serverCert).raw);
    await assert.rejects(
      loadTlsMaterial({ certFile: text, keyFile: pki.keyPath, devDir: devDir(), log }),
      tlsError(/^ARMHOOK_TLS_CERT=\S*text\.pem: /, /BEGIN CERTIFICATE/),
    );
    await assert.rejects(
      loadTlsMaterial({ certFile: der, keyFile: pki.keyPath, devDir: devDir(), log }),
      tlsError(/^ARMHOOK_TLS_CERT=\S*cert\.der: /, /PEM certificate is expected/),
    );
    await assert.rejects(
      loadTlsMaterial({ certFile: pki.certPath, keyFile: text, devDir: devDir(), log }),
      tlsError(/^ARMHOOK_TLS_KEY=\S*text\.pem: /, /PEM private key is expected/),
    );
    // Swapped settings: the key file is where the certificate should be.
    await assert.rejects(loadTlsMaterial({ certFile: pki.keyPath, keyFile: pki.certPath, devDir: devDir(), log }), tlsError(/^ARMHOOK_TLS_CERT=/));
    const broken = await file('broken.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await assert.rejects(loadTlsMaterial({ certFile: broken, keyFile: pki.keyPath, devDir: devDir(), log }), tlsError(/^ARMHOOK_TLS_CERT=.*cannot be parsed/));
  });

  test('a key that does not match the certificate', async () => {
    const { log } = captureLog();
    await assert.rejects(loadTlsMaterial({ certFile: pki.certPath, keyFile: other.keyPath, devDir: devDir(), log }), (err: unknown) => {
      tlsError(/ARMHOOK_TLS_KEY=\S+ and ARMHOOK_TLS_CERT=\S+: the private key does not belong to the certificate/)(err);
      assert.deepEqual((err as TlsMaterialError).settings, ['ARMHOOK_TLS_KEY', 'ARMHOOK_TLS_CERT']);
      return true;
    });
  });

  test('an encrypted key is refused with what to do', async () => {
    const encrypted = createPrivateKey(pki.serverKey).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' });
    const keyFile = await file('encrypted.pem', encrypted);
    const { log } = captureLog();
    await assert.rejects(
      loadTlsMaterial({ certFile: pki.certPath, keyFile, devDir: devDir(), log }),
      tlsError(/^ARMHOOK_TLS_KEY=.*encrypted with a passphrase/),
    );
  });

  test('an expired certificate is refused', async () => {
    const old = await generateSelfSignedCert({
      commonName: 'old.example.com',
      hostnames: ['old.example.com'],
      notBefore: new Date(Date.now() - 30 * DAY_MS),
      notAfter: new Date(Date.now() - DAY_MS),
    });
    const certFile = await file('expired-cert.pem', old.cert, 0o644);
    const keyFile = await file('expired-key.pem', old.key);
    const { log } = captureLog();
    await assert.rejects(
      loadTlsMaterial({ certFile, keyFile, devDir: devDir(), log }),
      tlsError(/^ARMHOOK_TLS_CERT=\S*expired-cert\.pem: the certificate \(CN=old\.example\.com\) expired on \d{4}-/, /renew/),
    );
  });

  test('a certificate expiring within 14 days loads with a warning', async () => {
    const soon = await generateSelfSignedCert({ commonName: 'soon.example.com', hostnames: ['soon.example.com'], validityDays: 5 });
    const certFile = await file('soon-cert.pem', soon.cert, 0o644);
    const keyFile = await file('soon-key.pem', soon.key);
    const captured = captureLog();
    const m = await loadTlsMaterial({ certFile, keyFile, devDir: devDir(), log: captured.log });
    assert.equal(m.source, 'files');
    const warn = captured.entries().find((e) => e.level === LEVEL.warn);
    assert.ok(warn, captured.text());
    assert.match(warn.msg, /expires on .* \(in 4 days\); renew it/);
    assert.equal(warn.daysLeft, 4);
  });

  test('a world-readable key loads with a warning', async () => {
    const keyFile = await file('lax-key.pem', pki.serverKey, 0o644);
    await chmod(keyFile, 0o644);
    const captured = captureLog();
    await loadTlsMaterial({ certFile: pki.certPath, keyFile, devDir: devDir(), log: captured.log });
    assert.ok(
      captured.entries().some((e) => e.level === LEVEL.warn && /readable by every user/.test(e.msg)),
      captured.text(),
    );
  });
});
