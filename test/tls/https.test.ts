import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { httpsServerOptions, loadTlsMaterial, type TlsMaterial } from '../../server/tls/index.ts';
import { writeTestPki } from '../helpers/certs.ts';
import { captureLog } from '../helpers/log.ts';

const run = promisify(execFile);
const CURL = '/usr/bin/curl';

async function listen(material: TlsMaterial): Promise<{ server: Server; port: number; clientErrors: Error[] }> {
  const clientErrors: Error[] = [];
  const server = createServer(httpsServerOptions(material), (_req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end('hello over tls\n');
  });
  server.on('tlsClientError', (err) => clientErrors.push(err));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, clientErrors };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Opens a TLS connection; resolves with the negotiated protocol and whether the peer was verified, or rejects. */
async function handshake(options: ConnectionOptions): Promise<{ protocol: string | null; authorized: boolean }> {
  const socket = connect(options);
  try {
    await once(socket, 'secureConnect');
    return { protocol: socket.getProtocol(), authorized: socket.authorized };
  } finally {
    socket.destroy();
  }
}

describe('HTTPS with the loaded material', () => {
  let root: string;
  let material: TlsMaterial;
  let server: Server;
  let port: number;
  let clientErrors: Error[];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'armhook-tls-https-'));
    material = await loadTlsMaterial({ devDir: join(root, 'tls'), log: captureLog().log });
    ({ server, port, clientErrors } = await listen(material));
  });
  after(async () => {
    await close(server);
    await rm(root, { recursive: true, force: true });
  });

  test('httpsServerOptions gives cert, key and TLS 1.2 as the minimum', () => {
    assert.deepEqual(httpsServerOptions(material), { cert: material.cert, key: material.key, minVersion: 'TLSv1.2' });
  });

  test('a node:tls client that trusts the dev certificate connects with TLS 1.3, and with TLS 1.2', async () => {
    const base = { host: '127.0.0.1', port, servername: 'localhost', ca: material.cert };
    assert.deepEqual(await handshake(base), { protocol: 'TLSv1.3', authorized: true });
    assert.deepEqual(await handshake({ ...base, maxVersion: 'TLSv1.2' }), { protocol: 'TLSv1.2', authorized: true });
  });

  test('the server refuses a client that offers at most TLS 1.1', async () => {
    const before = clientErrors.length;
    await assert.rejects(
      handshake({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: material.cert,
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
        ciphers: 'DEFAULT@SECLEVEL=0', // let the client's OpenSSL offer TLS 1.0/1.1 at all
      }),
      (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
        return true;
      },
    );
    // The refusal came from the server (it saw the old ClientHello), not from the client giving up.
    if (clientErrors.length === before) await once(server, 'tlsClientError');
    assert.match(String(clientErrors.at(-1)), /unsupported protocol/i);
  });

  test('curl --cacert <dev cert> https://localhost:<port>/ works; without it curl refuses', async () => {
    const { stdout } = await run(CURL, [
      '--silent',
      '--show-error',
      '--cacert',
      material.certPath,
      '--resolve',
      `localhost:${port}:127.0.0.1`,
      `https://localhost:${port}/`,
    ]);
    assert.equal(stdout, 'hello over tls\n');
    const viaIp = await run(CURL, ['--silent', '--show-error', '--cacert', material.certPath, `https://127.0.0.1:${port}/`]);
    assert.equal(viaIp.stdout, 'hello over tls\n');
    await assert.rejects(
      run(CURL, ['--silent', '--show-error', '--resolve', `localhost:${port}:127.0.0.1`, `https://localhost:${port}/`]),
      (err: { code?: number }) => {
        assert.equal(err.code, 60); // peer certificate cannot be authenticated
        return true;
      },
    );
  });

  test('operator files from a CA: clients trusting only the CA connect (ca:, curl --cacert, NODE_EXTRA_CA_CERTS)', async () => {
    const dir = join(root, 'pki');
    await mkdir(dir);
    const pki = await writeTestPki(dir);
    const files = await loadTlsMaterial({ certFile: pki.certPath, keyFile: pki.keyPath, devDir: join(root, 'unused'), log: captureLog().log });
    const other = await listen(files);
    try {
      assert.deepEqual(await handshake({ host: '127.0.0.1', port: other.port, servername: 'localhost', ca: pki.caCert }), {
        protocol: 'TLSv1.3',
        authorized: true,
      });
      const { stdout } = await run(CURL, [
        '--silent',
        '--show-error',
        '--cacert',
        pki.caPath,
        '--resolve',
        `localhost:${other.port}:127.0.0.1`,
        `https://localhost:${other.port}/`,
      ]);
      assert.equal(stdout, 'hello over tls\n');
      // How the ARM fake is trusted by a child process: NODE_EXTRA_CA_CERTS at process start.
      const child = await run(
        process.execPath,
        ['--input-type=module', '-e', 'process.stdout.write(await (await fetch(process.argv[1])).text())', `https://127.0.0.1:${other.port}/`],
        { env: { ...process.env, NODE_EXTRA_CA_CERTS: pki.caPath } },
      );
      assert.equal(child.stdout, 'hello over tls\n');
    } finally {
      await close(other.server);
    }
  });
});
