// ACME against Debian's pebble with real TLS-ALPN-01 validation on armhook's own port: a fresh
// `armhook serve` gets a certificate, renews it without a restart (short-lived certificates)
// while a stream stays open, and keeps serving the last one when the CA goes away; a CA that
// cannot be reached leaves the dev certificate serving, with back-off.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request, type RequestOptions } from 'node:https';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { acmeStatus, parseAcmeDomains } from '../../server/tls/acme.ts';
import { createTestPki } from '../helpers/certs.ts';
import { LEVEL } from '../helpers/log.ts';
import { freePort, startPebble, type Pebble } from '../helpers/pebble.ts';
import { removeRoot, startServerProcess, type ServerProcess } from '../helpers/process.ts';
import { startServer, streamReader } from '../helpers/server.ts';

const DOMAIN = 'runner.armhook.test';
const silent = pino({ level: 'silent' });
/** Short enough to see a renewal (at two thirds of it) within the test, long enough to use it. */
const VALIDITY_SECONDS = 9;

let pebble: Pebble | undefined;
let server: ServerProcess | undefined;
let dir: string | undefined;
after(async () => {
  await server?.kill();
  await pebble?.stop();
  if (server) await removeRoot(server.root);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The certificate a new connection for DOMAIN gets, verified against pebble's issuing root. */
function served(port: number, root: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: DOMAIN, ca: root }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (cert) resolve(cert);
      else reject(new Error('no peer certificate'));
    });
    socket.on('error', reject);
  });
}

function openVerified(port: number, root: string, path: string, options: RequestOptions = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, servername: DOMAIN, ca: root, agent: false, headers: { host: DOMAIN }, ...options }, resolve);
    req.on('error', reject);
    req.end();
  });
}

const gotCertificate = (line: { msg: string }): boolean => line.msg.startsWith('ACME: got a certificate');

test('a fresh process gets a pebble certificate, renews it without a restart, and keeps it when the CA is gone', { timeout: 90_000 }, async () => {
  dir = await mkdtemp(join(tmpdir(), 'armhook-pebble-'));
  const port = await freePort();
  pebble = await startPebble({ dir, tlsPort: port, certificateValiditySeconds: VALIDITY_SECONDS });
  const started = Date.now();
  const env = {
    ARMHOOK_LISTEN: `127.0.0.1:${port}`,
    ARMHOOK_ACME_DOMAINS: DOMAIN,
    ARMHOOK_ACME_EMAIL: 'ops@armhook.test',
    ARMHOOK_ACME_DIRECTORY: pebble.directory,
    ARMHOOK_ACME_CA_FILE: pebble.caPath,
  };
  server = await startServerProcess({
    // The bundle, as systemd runs it (acme-client inside it, loaded on demand).
    dist: true,
    devCert: true,
    scripts: { 'wait.sh': '#!/bin/sh\necho started\nwhile [ ! -f "$ARMHOOK_TEST_MARKERS/go" ]; do sleep 0.02; done\necho finished\n' },
    env,
  });
  const proc = server;
  await proc.waitForLog(gotCertificate);
  const firstSeconds = (Date.now() - started) / 1000;
  assert.ok(firstSeconds < 30, `first certificate after ${firstSeconds} s`);
  const root = await pebble.issuingRoot();
  const first = await served(port, root);
  assert.ok(first.checkHost(DOMAIN));
  assert.match(first.issuer, /Pebble/i);

  // Stored for the next start: account key and certificate, readable by armhook alone.
  for (const name of ['account-key.pem', 'cert.pem', 'key.pem']) {
    assert.equal(statSync(join(proc.dataDir, 'acme', name)).mode & 0o777, 0o600, name);
  }
  assert.equal(new X509Certificate(readFileSync(join(proc.dataDir, 'acme', 'cert.pem'))).fingerprint256, first.fingerprint256);

  // A stream opened on the first certificate outlives the swap.
  const stream = streamReader(await openVerified(port, root, '/wait', { method: 'POST' }));
  await stream.until((text) => text.includes('data: started'));
  assert.equal(proc.logs().filter(gotCertificate).length, 1, 'the stream started on the first certificate, before the renewal');

  // Renewal at two thirds of the lifetime: a second, validated again by pebble.
  await proc.waitForLog((line) => gotCertificate(line) && proc.logs().filter(gotCertificate).length >= 2);
  const second = await served(port, root);
  assert.notEqual(second.fingerprint256, first.fingerprint256);
  assert.ok(Date.parse(second.validTo) > Date.parse(first.validTo));

  await writeFile(join(proc.markerDir, 'go'), '');
  const text = await stream.end();
  assert.match(text, /data: finished\n/);
  assert.match(text, /event: done\ndata: \{[^\n]*"status":"succeeded"/);

  // The CA goes away: the next renewal fails, says why and when it tries again; the renewed
  // certificate keeps serving.
  await pebble.stop();
  const failure = await proc.waitForLog((line) => line.msg.startsWith('ACME: could not get a certificate'));
  assert.equal(failure.level, LEVEL.error);
  assert.match(failure.msg, /The current certificate keeps serving .*; next attempt in 60 s\. Check that the names resolve/);
  assert.equal(await servedUnverified(port), second.fingerprint256);

  // A restart serves the stored certificate at once (no dev certificate in between) and plans
  // its renewal from it.
  await proc.kill();
  server = await startServerProcess({ root: proc.root, dist: true, devCert: true, env });
  const restarted = server;
  assert.equal(await servedUnverified(port), second.fingerprint256);
  await restarted.waitForLog((line) => line.msg.startsWith(`ACME certificate for ${DOMAIN} valid until ${new Date(second.validTo).toISOString()}`));
});

/** The served certificate's fingerprint without verification (once expired, it no longer verifies). */
function servedUnverified(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: DOMAIN, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
      socket.end();
    });
    socket.on('error', reject);
  });
}

test('a failing ACME server: the dev certificate serves, attempts back off, each failure is one clear log line', async () => {
  // Answers every request 404, as a wrong directory URL would.
  const broken = createHttpServer((_req, res) =>
    res.writeHead(404, { 'content-type': 'application/problem+json' }).end('{"type":"urn:ietf:params:acme:error:malformed","detail":"no such directory"}'),
  );
  await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
  const brokenPort = (broken.address() as AddressInfo).port;
  const local = await startServer({
    config: { tlsCert: undefined, tlsKey: undefined, acmeDomains: DOMAIN, acmeDirectory: `http://127.0.0.1:${brokenPort}/dir` },
    acmeRetry: { initialMs: 20, maxMs: 80 },
  });
  try {
    const failures = async (count: number): Promise<Array<Record<string, unknown>>> => {
      for (let i = 0; i < 1000; i++) {
        const lines = local.logs.entries().filter((line) => line.msg.startsWith('ACME: could not get a certificate'));
        if (lines.length >= count) return lines;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.fail(`fewer than ${count} failed attempts logged`);
    };
    const lines = await failures(4);
    assert.deepEqual(
      lines.slice(0, 4).map((line) => line['retryInSeconds']),
      [0.02, 0.04, 0.08, 0.08],
    );
    assert.match(String(lines[0]?.['msg']), /directory returned error 404.*The self-signed dev certificate keeps serving .*; next attempt in 0\.02 s/);
    // Not on 443, with a public-CA setup: the operator is told where validation will knock.
    assert.ok(
      local.logs.entries().some((line) => line.level === LEVEL.warn && line.msg.startsWith('ACME validates TLS-ALPN-01 on port 443, and armhook listens on')),
    );
    const dev = readFileSync(join(local.root, 'tls', 'dev-cert.pem'), 'utf8');
    assert.equal(await servedUnverified(local.port), new X509Certificate(dev).fingerprint256);
  } finally {
    await local.close();
    broken.close();
  }
});

test("armhook check's ACME line: no certificate yet, then the stored one and when it renews", async () => {
  const acmeDir = await mkdtemp(join(tmpdir(), 'armhook-acme-status-'));
  try {
    const options = { domains: 'runner.example.com', directoryUrl: 'https://ca.example/dir', dir: acmeDir, listenPort: 8443 };
    assert.equal(
      await acmeStatus(options, silent),
      'ACME for runner.example.com from https://ca.example/dir: no certificate yet; the dev certificate serves until the first one; armhook listens on 8443, a public CA validates on 443',
    );
    const pki = await createTestPki(['runner.example.com']);
    await writeFile(join(acmeDir, 'cert.pem'), pki.serverCert);
    await writeFile(join(acmeDir, 'key.pem'), pki.serverKey);
    const leaf = new X509Certificate(pki.serverCert);
    const [from, to] = [Date.parse(leaf.validFrom), Date.parse(leaf.validTo)];
    const renewal = new Date(from + ((to - from) * 2) / 3).toISOString();
    assert.equal(
      await acmeStatus({ ...options, listenPort: 443 }, silent),
      `ACME for runner.example.com from https://ca.example/dir: ${join(acmeDir, 'cert.pem')} valid until ${new Date(to).toISOString()}, renewal due ${renewal}`,
    );
    await assert.rejects(acmeStatus({ ...options, domains: '10.0.0.4' }, silent), /cannot be validated over TLS-ALPN-01/);
  } finally {
    await rm(acmeDir, { recursive: true, force: true });
  }
});

test('ACME names must be DNS names that TLS-ALPN-01 can validate', () => {
  assert.deepEqual(parseAcmeDomains(' Runner.Example.com, b.example.com '), ['runner.example.com', 'b.example.com']);
  assert.throws(() => parseAcmeDomains('10.0.0.4'), /10\.0\.0\.4 cannot be validated over TLS-ALPN-01/);
  assert.throws(() => parseAcmeDomains('*.example.com'), /cannot be validated over TLS-ALPN-01/);
  assert.throws(() => parseAcmeDomains(' , '), /names no DNS name/);
});
