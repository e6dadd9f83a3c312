// `armhook check` against the fakes, as a child process (its own identity library and token
// cache): it verifies the identity (token obtainable, principal id) and ARM reachability, and
// exits non-zero on problems.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestPki, type TestPki } from '../helpers/certs.ts';
import { runCheck, type CliRun } from '../helpers/process.ts';
import { startArmFake, type ArmFake } from '../fakes/arm.ts';
import { startImdsFake, type ImdsFake } from '../fakes/imds.ts';

let imds: ImdsFake;
let arm: ArmFake;
let pki: TestPki;
let dir: string;
let caFile: string;

before(async () => {
  imds = await startImdsFake();
  pki = await createTestPki(['127.0.0.1']);
  arm = await startArmFake({ cert: pki.serverCert, key: pki.serverKey, subscriptionId: imds.compute.subscriptionId });
  arm.addGroup('one-rg');
  dir = await mkdtemp(join(tmpdir(), 'armhook-check-'));
  caFile = join(dir, 'arm-ca.pem');
  await writeFile(caFile, pki.caCert);
  await mkdir(join(dir, 'scripts'), { recursive: true });
  await writeFile(join(dir, 'scripts', 'hello.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
});
after(async () => {
  await arm?.close();
  await imds?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function check(env: Record<string, string>): Promise<CliRun> {
  return runCheck(dir, {
    ARMHOOK_SCRIPTS_DIR: join(dir, 'scripts'),
    ARMHOOK_TLS_DIR: join(dir, 'tls'),
    ARMHOOK_DATA_DIR: join(dir, 'data'),
    ARMHOOK_IMDS_ENDPOINT: imds.url,
    ARMHOOK_ARM_ENDPOINT: arm.url,
    ARMHOOK_ARM_CA_FILE: caFile,
    ...env,
  });
}

async function closedPortUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

describe('armhook check', () => {
  test('against working fakes: identity lines, principal id, ARM reachable, exit 0', async () => {
    const tokensBefore = imds.counts.token;
    const run = await check({});
    assert.equal(run.code, 0, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
    const out = run.stdout;
    assert.match(
      out,
      new RegExp(
        `ok +azure: instance metadata \\(${imds.url}\\): subscription ${imds.compute.subscriptionId}, resource group runner-rg, location westeurope, VM runner-vm`,
      ),
      out,
    );
    assert.match(out, /ok +azure: managed identity \(system-assigned\): token obtained/, out);
    assert.ok(out.includes(`principal id ${imds.claims.oid}`), out);
    assert.ok(out.includes(`tenant ${imds.claims.tid}`), out);
    assert.match(out, new RegExp(`ok +azure: Resource Manager \\(${arm.url.replace(/[.]/g, '\\.')}\\): reachable`), out);
    assert.match(out, /armhook check: all good/);
    assert.ok(imds.counts.token > tokensBefore, 'the check asked the IMDS fake for a token');
    assert.ok(!out.includes('eyJ0eXAi') && !run.stderr.includes('eyJ0eXAi'), 'the token is never printed');
  });

  test('ARM answers 403: the check fails with the role assignment hint', async () => {
    arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 403 });
    try {
      const run = await check({});
      assert.equal(run.code, 1, run.stdout);
      assert.match(run.stdout, /FAIL +azure: Resource Manager .*az role assignment create --assignee /, run.stdout);
      assert.ok(run.stdout.includes(imds.claims.oid));
      assert.match(run.stdout, /armhook check: \d+ problem/);
    } finally {
      arm.clearFailures();
    }
  });

  test('ARM answers 403: only the failing step is FAIL; metadata and token stay ok; one problem counted', async () => {
    arm.fail({ method: 'GET', path: /\/resourcegroups$/i, status: 403 });
    try {
      const run = await check({});
      assert.equal(run.code, 1, run.stdout);
      assert.match(run.stdout, /^ok +azure: instance metadata \(/m, `the metadata step succeeded:\n${run.stdout}`);
      assert.match(run.stdout, /^ok +azure: managed identity \(system-assigned\): token obtained/m, `the token step succeeded:\n${run.stdout}`);
      assert.match(run.stdout, /^FAIL +azure: Resource Manager /m);
      assert.match(run.stdout, /armhook check: 1 problem\(s\)/, run.stdout);
    } finally {
      arm.clearFailures();
    }
  });

  test('IMDS unreachable: the check fails and says so (and does not hang)', async () => {
    const run = await check({ ARMHOOK_IMDS_ENDPOINT: await closedPortUrl() });
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stdout, /FAIL +azure: instance metadata unreachable at .*ECONNREFUSED/, run.stdout);
    assert.match(run.stdout, /FAIL +azure: managed identity token: not requested/, run.stdout);
    // Resource Manager could not be tried: said so, but not counted as a third problem.
    assert.match(run.stdout, /^skip +azure: Resource Manager \(.*\): not checked/m, run.stdout);
    assert.match(run.stdout, /armhook check: 2 problem\(s\)/, run.stdout);
  });

  test('a missing ARM CA file is named', async () => {
    const run = await check({ ARMHOOK_ARM_CA_FILE: join(dir, 'no-such-ca.pem') });
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stdout + run.stderr, /ARMHOOK_ARM_CA_FILE/);
  });

  test('an ARM CA file without a certificate is named, and says what is wrong', async () => {
    const junk = join(dir, 'key-not-ca.pem');
    await writeFile(junk, pki.serverKey);
    const run = await check({ ARMHOOK_ARM_CA_FILE: junk });
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stdout, /FAIL +ARMHOOK_ARM_CA_FILE .*key-not-ca\.pem: no PEM certificate/, run.stdout);
  });
});
