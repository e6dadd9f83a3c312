// Access tokens in output are masked before anything is stored or streamed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { maskTokens } from '../../server/jobs/index.ts';

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
const jwt = `${b64({ typ: 'JWT', alg: 'RS256' })}.${b64({ aud: 'https://management.azure.com/', oid: 'x' })}.c2lnbmF0dXJlLV8`;

test('a JWT anywhere in a line is masked, whatever surrounds it', () => {
  assert.equal(maskTokens(jwt), '***');
  assert.equal(maskTokens(`Authorization: Bearer ${jwt}`), 'Authorization: Bearer ***');
  assert.equal(maskTokens(`token=${jwt}&next=1`), 'token=***&next=1');
  assert.equal(maskTokens(`"${jwt}", "${jwt}"`), '"***", "***"');
  // Unsigned (empty signature) and encrypted (five parts) tokens too.
  assert.equal(maskTokens(`${b64({ alg: 'none' })}.${b64({ sub: 'a' })}.`), '***');
  assert.equal(maskTokens(`${b64({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.a-b_c.iv.cipher.tag end`), '*** end');
});

test('token fields are masked whatever the token looks like: JSON as az prints it, and Python dicts (az --debug)', () => {
  assert.equal(maskTokens('  "accessToken": "opaque-value",'), '  "accessToken": "***",');
  assert.equal(maskTokens('{"access_token":"a\\"b","expires_in":"3599"}'), '{"access_token":"***","expires_in":"3599"}');
  assert.equal(maskTokens('{"refresh_token": "0.AXYA-opaque", "token_type": "Bearer"}'), '{"refresh_token": "***", "token_type": "Bearer"}');
  assert.equal(maskTokens("{'access_token': 'abc', 'expires_on': 1}"), "{'access_token': '***', 'expires_on': 1}");
});

test('lines without a token are returned as they are', () => {
  for (const line of [
    'Creating the resource group...',
    '"tokenType": "Bearer",',
    'eyJ is how base64 of {" starts',
    'a.b.c',
    '"expiresOn": "2026-12-06 22:16:22.000000"',
  ]) {
    assert.equal(maskTokens(line), line);
  }
});
