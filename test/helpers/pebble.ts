// Debian's pebble (a test ACME server) with real validation, all on loopback: pebble-challtestsrv
// answers DNS for every name with 127.0.0.1, pebble asks it (-dnsserver) and validates
// TLS-ALPN-01 by connecting to that address on `tlsPort` — the port armhook listens on.
// Not PEBBLE_VA_ALWAYS_VALID: every authorization is checked against the server under test.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { writeTestPki } from './certs.ts';

export interface Pebble {
  /** The ACME directory URL. */
  directory: string;
  /** CA file that makes pebble's own HTTPS endpoint trusted (ARMHOOK_ACME_CA_FILE). */
  caPath: string;
  /** The root that signs the certificates pebble issues (fetched from its management API). */
  issuingRoot(): Promise<string>;
  /** Output of pebble and the DNS server so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

/** A free loopback TCP port (bound and released; good enough for a test machine). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startPebble(options: { dir: string; tlsPort: number; certificateValiditySeconds?: number }): Promise<Pebble> {
  await mkdir(options.dir, { recursive: true });
  const pki = await writeTestPki(options.dir, ['127.0.0.1', 'localhost']);
  const [acmePort, managementPort, httpPort, dnsPort, dnsManagementPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
      managementListenAddress: `127.0.0.1:${managementPort}`,
      certificate: pki.certPath,
      privateKey: pki.keyPath,
      httpPort,
      tlsPort: options.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      ...(options.certificateValiditySeconds ? { certificateValidityPeriod: options.certificateValiditySeconds } : {}),
    },
  };
  const configPath = join(options.dir, 'pebble-config.json');
  await writeFile(configPath, JSON.stringify(config));

  let output = '';
  const children: ChildProcess[] = [];
  const run = (command: string, args: string[], env: Record<string, string>, ready: RegExp): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = spawn(command, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (ready.test(output)) resolve();
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`${command} exited (${code}) before it was ready:\n${output}`)));
    });

  // DNS for every name: 127.0.0.1, no IPv6 answers (armhook listens on 127.0.0.1 only).
  await run(
    'pebble-challtestsrv',
    [
      '-management',
      `127.0.0.1:${dnsManagementPort}`,
      '-dns01',
      `127.0.0.1:${dnsPort}`,
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-defaultIPv4',
      '127.0.0.1',
      '-defaultIPv6',
      '',
    ],
    {},
    /Starting management server/,
  );
  // NOSLEEP: validate at once (pebble otherwise waits up to 15 s); no nonce rejections or
  // authorization reuse, so each order is validated anew.
  await run(
    'pebble',
    ['-config', configPath, '-dnsserver', `127.0.0.1:${dnsPort}`],
    { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
    /Listening on: 127\.0\.0\.1:\d+/,
  );

  const management = `https://127.0.0.1:${managementPort}`;
  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    caPath: pki.caPath,
    async issuingRoot() {
      const { request } = await import('node:https');
      return new Promise((resolve, reject) => {
        request(`${management}/roots/0`, { ca: pki.caCert }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve(text));
        })
          .on('error', reject)
          .end();
      });
    },
    output: () => output,
    async stop() {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.removeAllListeners('exit');
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}
