// ARMHOOK_TLS_CERT/KEY replaced on disk (as certbot or the Key Vault extension do): new
// connections get the new pair, a stream opened before the swap runs to its end, and a broken
// pair leaves the served one in place with a log line saying why.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestPki, type TestPki } from '../helpers/certs.ts';
import { LEVEL } from '../helpers/log.ts';
import { open, startServer, streamReader, type TestServer } from '../helpers/server.ts';

let server: TestServer;
before(async () => {
  server = await startServer({
    scripts: {
      'wait.sh': '#!/bin/sh\necho started\nwhile [ ! -f "$ARMHOOK_TEST_MARKERS/go" ]; do sleep 0.02; done\necho finished\n',
    },
  });
});
after(() => server.close());

/** The fingerprint of the certificate a new connection gets. */
function servedFingerprint(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      socket.end();
      resolve(fingerprint);
    });
    socket.on('error', reject);
  });
}

function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** Waits (bounded) for a log line the reload writes; the watcher reacts within a fraction of a second. */
async function logLine(predicate: (line: { level: number; msg: string }) => boolean, after: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (server.logs.entries().slice(after).some(predicate)) return;
    await sleep(10);
  }
  assert.fail('the expected log line did not come within 5 s');
}

/** Replaces a file the way renewal tools do: write elsewhere, rename over it. */
async function replace(path: string, text: string): Promise<void> {
  await writeFile(`${path}.new`, text, { mode: 0o600 });
  await rename(`${path}.new`, path);
}

let second: TestPki;

test('a renewed pair is served to new connections while a stream opened before runs to its end', async () => {
  const first = await servedFingerprint();
  assert.equal(first, fingerprintOf(readFileSync(server.config.tlsCert!, 'utf8')));
  const stream = streamReader(await open(server, '/wait', { method: 'POST' }));
  await stream.until((text) => text.includes('data: started'));

  second = await createTestPki(['localhost', '127.0.0.1']);
  const mark = server.logs.entries().length;
  await replace(server.config.tlsKey!, second.serverKey);
  await replace(server.config.tlsCert!, second.serverCert);
  await logLine((line) => /^new connections get the files certificate/.test(line.msg), mark);
  assert.equal(await servedFingerprint(), fingerprintOf(second.serverCert));

  await writeFile(`${server.markerDir}/go`, '');
  const text = await stream.end();
  assert.match(text, /data: finished\n/);
  assert.match(text, /event: done\ndata: \{[^\n]*"status":"succeeded"/);
});

test('a broken or mismatched pair keeps the served certificate and says why', async () => {
  let mark = server.logs.entries().length;
  await replace(server.config.tlsCert!, '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n');
  await logLine((line) => line.level === LEVEL.error && /not usable, so new connections keep the current one/.test(line.msg), mark);
  assert.equal(await servedFingerprint(), fingerprintOf(second.serverCert));

  const third = await createTestPki(['localhost']);
  mark = server.logs.entries().length;
  await replace(server.config.tlsCert!, third.serverCert); // its key is not written
  await logLine((line) => line.level === LEVEL.error && /ARMHOOK_TLS_KEY=.*ARMHOOK_TLS_CERT=|does not match|mismatch/i.test(line.msg), mark);
  assert.equal(await servedFingerprint(), fingerprintOf(second.serverCert));

  // The key arrives: the pair is whole again and served.
  mark = server.logs.entries().length;
  await replace(server.config.tlsKey!, third.serverKey);
  await logLine((line) => /^new connections get the files certificate/.test(line.msg), mark);
  assert.equal(await servedFingerprint(), fingerprintOf(third.serverCert));
});
