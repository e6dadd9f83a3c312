// Pure pieces of server/azure: parsing, claims, error mapping, parameter schemas.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Value } from '@sinclair/typebox/value';
import { AppError } from '../../server/errors.ts';
import { caCertificates } from '../../server/azure/clients.ts';
import { createTestPki } from '../helpers/certs.ts';
import { abortedError, roleForAction, toHandlerError, type ArmAction } from '../../server/azure/errors.ts';
import { ARC_AGENT_BINARY, decodeJwtPayload, describeCredentialError, identityFromToken, tokenProbeFor } from '../../server/azure/identity.ts';
import { MetadataError, metadataUrl, parseInstanceMetadata, readInstanceMetadata, requestImdsToken } from '../../server/azure/metadata.ts';
import { parseDeploymentBody } from '../../server/azure/handlers/deployments.ts';
import { splitRunCommandOutput, statusesOf } from '../../server/azure/handlers/vms.ts';
import { DeploymentName, Location, ResourceGroupName, VmName } from '../../server/azure/handlers/common.ts';

const action: ArmAction = {
  what: 'start virtual machine v in resource group g',
  resource: 'virtual machine v in resource group g',
  scope: '/subscriptions/s/resourceGroups/g',
  role: 'Virtual Machine Contributor',
  principalId: 'p-1',
};

describe('parameter schemas', () => {
  test('resource group names', () => {
    for (const ok of ['rg', 'my-rg_1', 'a.b(c)', 'x'.repeat(90)]) assert.ok(Value.Check(ResourceGroupName, ok), ok);
    for (const bad of ['', 'ends.', '../etc', 'a/b', 'sp ace', 'x'.repeat(91), 'a?b', 'a%2Fb']) assert.ok(!Value.Check(ResourceGroupName, bad), bad);
  });
  test('VM, deployment and location names', () => {
    assert.ok(Value.Check(VmName, 'web-01.prod'));
    for (const bad of ['', '-lead', 'a/b', 'x'.repeat(65)]) assert.ok(!Value.Check(VmName, bad), bad);
    assert.ok(Value.Check(DeploymentName, 'release-2025.01(a)'));
    assert.ok(!Value.Check(DeploymentName, 'a/b'));
    assert.ok(Value.Check(Location, 'westeurope'));
    for (const bad of ['West Europe', 'we/st', '1abc']) assert.ok(!Value.Check(Location, bad), bad);
  });
});

describe('deployment body', () => {
  const body = (v: unknown): Buffer => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
  test('wraps plain values, keeps value/reference objects, unwraps parameter files', () => {
    const r = parseDeploymentBody(
      body({
        template: { resources: [] },
        parameters: { a: 'x', b: { value: 1 }, c: { reference: { keyVault: { id: 'kv' }, secretName: 's' } }, d: { nested: true } },
      }),
    );
    assert.deepEqual(r.parameters, {
      a: { value: 'x' },
      b: { value: 1 },
      c: { reference: { keyVault: { id: 'kv' }, secretName: 's' } },
      d: { value: { nested: true } },
    });
    const file = parseDeploymentBody(
      body({ template: { resources: [] }, parameters: { $schema: 'x', contentVersion: '1.0.0.0', parameters: { n: { value: 2 } } } }),
    );
    assert.deepEqual(file.parameters, { n: { value: 2 } });
  });
  test('every error is a 400 bad_body', () => {
    for (const bad of ['', 'nope', '"str"', 'null', '{"template": 1}', '{"template": {}}', '{"template": {"resources": []}, "parameters": "x"}']) {
      assert.throws(
        () => parseDeploymentBody(body(bad)),
        (err: unknown) => err instanceof AppError && err.status === 400 && err.code === 'bad_body',
        bad,
      );
    }
  });
});

describe('run-command output', () => {
  test('Linux: one message with [stdout] and [stderr]', () => {
    assert.deepEqual(splitRunCommandOutput([{ code: 'ProvisioningState/succeeded', message: 'Enable succeeded: \n[stdout]\nhello\n\n[stderr]\nwarn\n' }]), {
      stdout: 'hello\n',
      stderr: 'warn\n',
      failed: false,
    });
  });
  test('Windows: StdOut and StdErr statuses', () => {
    assert.deepEqual(
      splitRunCommandOutput([
        { code: 'ComponentStatus/StdOut/succeeded', message: 'out' },
        { code: 'ComponentStatus/StdErr/succeeded', message: 'err' },
      ]),
      { stdout: 'out', stderr: 'err', failed: false },
    );
  });
  test('failure is recognised', () => {
    assert.equal(splitRunCommandOutput([{ code: 'ProvisioningState/failed', message: 'Enable failed: x\n[stdout]\n\n[stderr]\n' }]).failed, true);
  });
  test('VM statuses', () => {
    assert.deepEqual(statusesOf([{ code: 'ProvisioningState/succeeded' }, { code: 'PowerState/deallocated' }]), {
      powerState: 'deallocated',
      provisioningState: 'succeeded',
    });
    assert.deepEqual(statusesOf(undefined), { powerState: null, provisioningState: null });
  });
});

describe('identity claims', () => {
  const jwt = (payload: object): string => `e30.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;
  test('system- and user-assigned from xms_mirid', () => {
    const sys = identityFromToken(
      {
        token: jwt({ oid: 'o', tid: 't', appid: 'a', xms_mirid: '/subscriptions/s/resourcegroups/g/providers/Microsoft.Compute/virtualMachines/v' }),
        expiresOnTimestamp: 0,
      },
      'user-assigned',
    );
    assert.equal(sys.identityType, 'system-assigned');
    assert.equal(sys.principalId, 'o');
    const user = identityFromToken(
      {
        token: jwt({ oid: 'o2', azp: 'client', xms_mirid: '/subscriptions/s/resourcegroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id' }),
        expiresOnTimestamp: 0,
      },
      'system-assigned',
    );
    assert.equal(user.identityType, 'user-assigned');
    assert.equal(user.clientId, 'client');
  });
  test('not a JWT: no claims, no crash', () => {
    assert.equal(decodeJwtPayload('opaque-token'), undefined);
    assert.equal(decodeJwtPayload('a.!!!.c'), undefined);
    assert.deepEqual(identityFromToken({ token: 'opaque', expiresOnTimestamp: Number.NaN }, 'system-assigned'), { identityType: 'system-assigned' });
  });
  test('credential errors are shortened for operators', () => {
    const msal = new Error(
      'ManagedIdentityCredential: Authentication failed. Message invalid_request: Error(s): Not Available - Timestamp: Not Available - Description: Identity not found - Correlation ID: Not Available - Trace ID: Not Available',
    );
    assert.equal(describeCredentialError(msal), 'the token endpoint refused: invalid_request (Identity not found)');
    assert.equal(describeCredentialError(new Error('ManagedIdentityCredential: Network unreachable. Message: x')), 'Network unreachable. Message: x');
  });
});

describe('instance metadata', () => {
  test('URL and parsing', () => {
    assert.equal(metadataUrl('http://169.254.169.254/'), 'http://169.254.169.254/metadata/instance?api-version=2021-02-01');
    assert.deepEqual(parseInstanceMetadata({ compute: { subscriptionId: 's', resourceGroupName: 'g', location: 'l', name: 'n' } }, 'x'), {
      subscriptionId: 's',
      resourceGroup: 'g',
      location: 'l',
      vmName: 'n',
    });
  });
  test('missing fields are named', () => {
    assert.throws(
      () => parseInstanceMetadata({ compute: { subscriptionId: 's', name: 'n' } }, 'http://imds'),
      (err: unknown) => err instanceof MetadataError && err.reachable && /lacks compute\.resourceGroupName, compute\.location/.test(err.message),
    );
    assert.throws(() => parseInstanceMetadata([], 'http://imds'), /no "compute" section/);
  });

  // A loopback endpoint that misbehaves in one way per path.
  async function misbehavingImds(): Promise<{ url: string; close: () => Promise<void> }> {
    const server = createServer((req, res) => {
      if (req.url?.startsWith('/cut/')) {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '1000' });
        res.write('{"compute":');
        setImmediate(() => res.socket?.destroy());
      } else if (req.url?.startsWith('/huge/')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(Buffer.alloc(2 * 1024 * 1024, 0x20));
      } else if (req.url?.startsWith('/silent/')) {
        // never answers: the client's timeout must end it
      } else if (req.url?.startsWith('/refuse/')) {
        res.writeHead(400, { 'Content-Type': 'application/json' }).end('{"error":"invalid_request","error_description":"Identity not found"}');
      } else if (req.url?.startsWith('/gateway/')) {
        res.writeHead(502, { 'Content-Type': 'text/html' }).end('<html>\n<body>Bad gateway</body></html>');
      } else if (req.url?.startsWith('/tokenless/')) {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"token_type":"Bearer","expires_on":"1"}');
      } else {
        res.writeHead(200).end('not json');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
  }

  test('an answer that breaks off, one that is too big, no answer, and not JSON: each a clear, reachable-or-not error', async () => {
    const imds = await misbehavingImds();
    try {
      const failure = async (path: string, timeoutMs = 2000): Promise<MetadataError> => {
        try {
          await readInstanceMetadata(`${imds.url}/${path}`, { timeoutMs });
        } catch (err) {
          assert.ok(err instanceof MetadataError, String(err));
          return err;
        }
        throw new Error(`${path}: no error`);
      };
      const cut = await failure('cut');
      assert.equal(cut.reachable, true);
      assert.match(cut.message, /reading the answer failed/);
      const huge = await failure('huge');
      assert.equal(huge.reachable, true);
      assert.match(huge.message, /larger than 1048576 bytes/);
      const silent = await failure('silent', 200);
      assert.match(silent.message, /no answer within 0\.2 s/);
      const junk = await failure('junk');
      assert.equal(junk.reachable, true);
      assert.match(junk.message, /not JSON: not json/);
    } finally {
      await imds.close();
    }
  });

  test('the readiness token probe: every failure is one operator-readable line, never the body of a 200', async () => {
    const imds = await misbehavingImds();
    try {
      const failure = async (path: string, timeoutMs = 2000): Promise<string> => {
        try {
          await requestImdsToken(`${imds.url}/${path}`, { resource: 'https://management.azure.com', timeoutMs });
        } catch (err) {
          assert.ok(err instanceof Error);
          return err.message;
        }
        throw new Error(`${path}: no error`);
      };
      assert.equal(await failure('refuse'), 'the token endpoint refused: invalid_request (Identity not found)');
      assert.equal(await failure('gateway'), 'the token endpoint answered HTTP 502: <html> <body>Bad gateway</body></html>');
      assert.equal(await failure('tokenless'), 'the token endpoint answered without an access_token: fields token_type, expires_on');
      assert.match(await failure('cut'), /^reading the token endpoint's answer failed: /);
      assert.match(await failure('huge'), /larger than 1048576 bytes/);
      assert.match(await failure('silent', 200), /^token endpoint unreachable at http:\/\/127\.0\.0\.1:\d+\/silent: no answer within 0\.2 s$/);
    } finally {
      await imds.close();
    }
    // Closed now: nothing listens on that port.
    await assert.rejects(requestImdsToken(imds.url, { resource: 'r' }), /^Error: token endpoint unreachable at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED$/);
  });

  test('the readiness probe asks IMDS itself only where the identity library would ask IMDS too', () => {
    const none = (): boolean => false;
    assert.equal(tokenProbeFor({}, none), 'imds');
    assert.equal(tokenProbeFor({ IDENTITY_ENDPOINT: '' }, none), 'imds', 'empty is unset');
    for (const name of ['IDENTITY_ENDPOINT', 'MSI_ENDPOINT', 'IMDS_ENDPOINT', 'AZURE_FEDERATED_TOKEN_FILE']) {
      assert.equal(tokenProbeFor({ [name]: 'x' }, none), 'library', name);
    }
    // Arc: MSAL detects the agent by its binary even when its variables are missing.
    assert.equal(
      tokenProbeFor({}, (path) => path === ARC_AGENT_BINARY),
      'library',
    );
  });
});

describe('ARM CA file', () => {
  test('each certificate of a bundle is checked; CRLF files work; anything else is refused with the reason', async () => {
    const pki = await createTestPki(['127.0.0.1']);
    const two = `${pki.caCert}\n${pki.serverCert}`;
    assert.equal(caCertificates(two).length, 2);
    assert.deepEqual(caCertificates(pki.caCert.replace(/\n/g, '\r\n')), caCertificates(pki.caCert));
    assert.throws(() => caCertificates(pki.serverKey), /^Error: no PEM certificate \("-----BEGIN CERTIFICATE-----"\) in it$/);
    assert.throws(() => caCertificates(''), /no PEM certificate/);
    // OpenSSL's TRUSTED CERTIFICATE form (openssl x509 -trustout) is a certificate too.
    const trusted = execFileSync('openssl', ['x509', '-trustout', '-addtrust', 'serverAuth'], { input: pki.caCert, encoding: 'utf8' });
    assert.match(trusted, /BEGIN TRUSTED CERTIFICATE/);
    assert.equal(caCertificates(`${trusted}${pki.caCert}`).length, 2);
    const broken = pki.caCert.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!');
    assert.throws(() => caCertificates(`${pki.caCert}\n${broken}`), /^Error: certificate 2 of 2 is not valid/);
  });
});

describe('error mapping', () => {
  test('LRO failure and cancellation in Azure', () => {
    const failed = toHandlerError(new Error('The long-running operation has failed. OSProvisioningTimedOut. The VM did not start.'), action);
    assert.equal(failed.status, 502);
    assert.equal(failed.code, 'arm_operation_failed');
    assert.match(failed.message, /could not start virtual machine v in resource group g: OSProvisioningTimedOut\. The VM did not start\./);
    const canceled = toHandlerError(new Error('Operation was canceled'), action);
    assert.equal(canceled.status, 409);
    assert.equal(canceled.code, 'arm_operation_canceled');
  });
  test('credential errors become 503 azure_not_ready', () => {
    const err = Object.assign(new Error('token endpoint down'), { name: 'CredentialUnavailableError' });
    const mapped = toHandlerError(err, action);
    assert.equal(mapped.status, 503);
    assert.equal(mapped.code, 'azure_not_ready');
  });
  test("401 from ARM is not the caller's problem: 502", () => {
    const err = Object.assign(new Error('token audience invalid'), { name: 'RestError', statusCode: 401, code: 'InvalidAuthenticationTokenAudience' });
    const mapped = toHandlerError(err, action);
    assert.equal(mapped.status, 502);
    assert.equal(mapped.code, 'arm_unauthorized');
  });
  test('a 403 without ARM details still gives a usable command', () => {
    const err = Object.assign(new Error('Forbidden'), { name: 'RestError', statusCode: 403 });
    const mapped = toHandlerError(err, { ...action, principalId: undefined });
    assert.equal(mapped.status, 403);
    assert.match(
      mapped.message,
      /--assignee <principal id of the VM identity> --role "Virtual Machine Contributor" --scope \/subscriptions\/s\/resourceGroups\/g/,
    );
  });
  test('roles by permission', () => {
    assert.equal(roleForAction('Microsoft.Compute/virtualMachines/read', 'Contributor'), 'Reader');
    assert.equal(roleForAction('Microsoft.Compute/virtualMachines/runCommand/action', 'Contributor'), 'Virtual Machine Contributor');
    assert.equal(roleForAction('Microsoft.Resources/deployments/write', 'Contributor'), 'Contributor');
    assert.equal(roleForAction(undefined, 'Owner'), 'Owner');
  });
  test('aborted error carries the reason and what may still run', () => {
    const controller = new AbortController();
    controller.abort(new Error('timed out after 5 s'));
    const err = abortedError(action, { id: 'x' }, controller.signal);
    assert.equal(err.code, 'aborted');
    assert.match(err.message, /\(timed out after 5 s\); the operation may still be running in Azure$/);
    assert.deepEqual(err.details, { mayStillBeRunning: true, resource: action.resource, id: 'x' });
  });
  test('AppError passes through unchanged', () => {
    const e = new AppError(400, 'x', 'y');
    assert.equal(toHandlerError(e, action), e);
  });
});
