// Off Azure: IMDS unreachable → the service still starts, readiness names what is missing,
// handlers answer 503 at once (no token request, nothing sent to ARM), and the background retry
// makes it ready when IMDS comes back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createAzure, type AzureService } from '../../server/azure/index.ts';
import { eventually, silentLogger, startAzureEnv, type AzureEnv } from './setup.ts';

let env: AzureEnv;

before(async () => {
  env = await startAzureEnv({ waitReady: false });
  // This file's own services are created below; the shared one is not used.
  env.azure.close();
});
after(async () => {
  await env?.close();
});

function service(overrides: { startupRetry?: { initialDelayMs?: number; maxDelayMs?: number } } = {}): AzureService {
  return createAzure({
    imdsEndpoint: env.imds.url,
    armEndpoint: env.arm.url,
    armCaCert: env.pki.caCert,
    pollIntervalMs: 2,
    startupRetry: overrides.startupRetry ?? { initialDelayMs: 60_000, maxDelayMs: 60_000 },
    log: silentLogger(),
  });
}

describe('IMDS down', () => {
  test('before start: not ready, says why', () => {
    const azure = service();
    assert.equal(azure.readiness().ready, false);
    assert.match(azure.readiness().reasons[0] ?? '', /not read yet/);
    assert.deepEqual(azure.scriptEnv(), {});
    assert.equal(azure.metadata(), undefined);
    azure.close();
  });

  test('unreachable: operator-readable reasons; no token requested; handlers 503 without waiting', async () => {
    await env.imds.down();
    const tokenBefore = env.imds.counts.token;
    const armBefore = env.arm.requests.length;
    const azure = service();
    try {
      azure.start();
      await azure.firstAttempt();
      const r = azure.readiness();
      assert.equal(r.ready, false);
      assert.deepEqual(r.reasons, [
        `instance metadata unreachable at ${env.imds.url}: ECONNREFUSED — is this an Azure VM?`,
        'managed identity token: not requested (instance metadata endpoint unreachable)',
      ]);
      assert.deepEqual(azure.scriptEnv(), {});

      assert.throws(
        () => azure.requireReady(),
        (err: { status: number; code: string; message: string }) => {
          assert.equal(err.status, 503);
          assert.equal(err.code, 'azure_not_ready');
          assert.match(err.message, /instance metadata unreachable at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
          return true;
        },
      );
      // Every handler refuses before doing anything: its promise settles before the event loop
      // reaches its next I/O phase (setImmediate), so nothing waited on the network.
      for (const h of await azure.loadHandlers()) {
        const p = h.run({
          params: {},
          clients: undefined,
          signal: new AbortController().signal,
          sink: { line() {}, progress() {} },
          log: silentLogger(),
          body: Buffer.alloc(0),
        });
        const first = await Promise.race([
          p.then(
            () => 'resolved',
            () => 'rejected',
          ),
          new Promise((resolve) => setImmediate(() => resolve('pending'))),
        ]);
        assert.equal(first, 'rejected', `${h.path} answered at once`);
        await assert.rejects(p, { status: 503, code: 'azure_not_ready' });
      }
      assert.equal(env.imds.counts.token, tokenBefore, 'no token request while IMDS is unreachable');
      assert.equal(env.arm.requests.length, armBefore, 'nothing sent to ARM');

      const check = await azure.check();
      assert.equal(check.ok, false);
      assert.ok(check.lines.some((l) => !l.ok && /ECONNREFUSED — is this an Azure VM\?/.test(l.text)));
      assert.match(check.lines.at(-1)?.text ?? '', /not checked/);
      assert.equal(check.lines.at(-1)?.skipped, true, 'skipped, not a problem of its own');
      assert.ok(
        check.lines.every((l) => !l.ok),
        'nothing was verified',
      );
    } finally {
      azure.close();
      await env.imds.up();
    }
  });

  test('comes back: the background retry makes the service ready by itself', async () => {
    await env.imds.down();
    const azure = service({ startupRetry: { initialDelayMs: 2, maxDelayMs: 10 } });
    try {
      azure.start();
      await azure.firstAttempt();
      assert.equal(azure.readiness().ready, false);
      await env.imds.up();
      await azure.whenReady();
      assert.deepEqual(azure.readiness(), { ready: true, reasons: [] });
      assert.equal(azure.scriptEnv()['AZURE_LOCATION'], 'westeurope');
      assert.ok(env.imds.counts.token >= 1);
    } finally {
      azure.close();
    }
  });
});

describe('IMDS answering errors', () => {
  test('metadata 500: says so, and still asks for a token (the endpoint is there)', async () => {
    env.imds.failMetadata(500);
    const azure = service();
    try {
      azure.start();
      await azure.firstAttempt();
      const r = azure.readiness();
      assert.equal(r.ready, false);
      assert.equal(r.reasons.length, 1, r.reasons.join('\n'));
      assert.match(r.reasons[0] ?? '', /^instance metadata at http:\/\/127\.0\.0\.1:\d+ answered HTTP 500: /);
      assert.ok(azure.identity()?.principalId, 'the token was obtained');
    } finally {
      env.imds.failMetadata(undefined);
      azure.close();
    }
  });

  test('each failed token request replaces the reason: an operator sees the current problem, not the first', async () => {
    env.imds.failToken(500, 'server_error', 'temporarily broken');
    const azure = service({ startupRetry: { initialDelayMs: 2, maxDelayMs: 5 } });
    try {
      azure.start();
      await azure.firstAttempt();
      assert.deepEqual(azure.readiness().reasons, ['managed identity token: the token endpoint refused: server_error (temporarily broken)']);
      env.imds.failToken(400, 'invalid_request', 'Identity not found');
      await eventually(() => azure.readiness().reasons[0]?.endsWith('invalid_request (Identity not found)') === true, 'the newer cause replaced the first');
    } finally {
      env.imds.failToken(undefined);
      azure.close();
    }
  });

  test('close() stops the background retries and rejects waiters', async () => {
    await env.imds.down();
    const azure = service({ startupRetry: { initialDelayMs: 1, maxDelayMs: 1 } });
    // A control with the same retry timing, left open: once it is ready, the closed one's
    // retries (were they still running) would have reached IMDS too.
    const control = service({ startupRetry: { initialDelayMs: 1, maxDelayMs: 1 } });
    azure.start();
    control.start();
    const waiting = azure.whenReady();
    await Promise.all([azure.firstAttempt(), control.firstAttempt()]);
    const metadataBefore = env.imds.counts.metadata;
    azure.close();
    await assert.rejects(waiting, /closed/);
    await env.imds.up();
    try {
      await control.whenReady();
      assert.deepEqual(azure.readiness(), { ready: false, reasons: ['azure: service closed'] });
      assert.equal(env.imds.counts.metadata, metadataBefore + 1, "only the control's metadata request");
    } finally {
      control.close();
    }
  });
});
