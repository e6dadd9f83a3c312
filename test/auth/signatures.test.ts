// The hmac scheme's time window, exactly at its edges: the clock is passed in, so the boundary is
// tested here rather than over a socket, where the time between signing and checking varies.
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { test } from 'node:test';
import { HMAC_TOLERANCE_SECONDS, ReplayGuard, checkGithubSignature, checkHmacSignature, type SignatureCheck } from '../../server/auth/signatures.ts';

const SECRET = Buffer.from('s3cret');
const NOW = 1_800_000_000;

function signed(t: number): { method: string; url: string; body: Buffer; header: string } {
  const body = Buffer.from('{"version":"1"}');
  const v1 = createHmac('sha256', SECRET).update(`${t}.POST./deploy/app?tag=x.`).update(body).digest('hex');
  return { method: 'POST', url: '/deploy/app?tag=x', body, header: `t=${t},v1=${v1}` };
}

const problemOf = (check: SignatureCheck): string => (check.valid ? '' : check.problem);

for (const [offset, accepted] of [
  [-HMAC_TOLERANCE_SECONDS - 1, false],
  [-HMAC_TOLERANCE_SECONDS, true],
  [0, true],
  [HMAC_TOLERANCE_SECONDS, true],
  [HMAC_TOLERANCE_SECONDS + 1, false],
] as const) {
  test(`hmac: a signature made ${offset} s from the server's clock is ${accepted ? 'accepted' : 'refused'}`, () => {
    const check = checkHmacSignature(SECRET, signed(NOW + offset), new ReplayGuard(), NOW);
    if (accepted) assert.ok(check.valid);
    else assert.match(problemOf(check), /more than 300 s from the server's/);
  });
}

test('hmac: a signature inside the window is accepted once', () => {
  const guard = new ReplayGuard();
  const request = signed(NOW - 10);
  assert.ok(checkHmacSignature(SECRET, request, guard, NOW).valid);
  assert.match(problemOf(checkHmacSignature(SECRET, request, guard, NOW + 1)), /already used/);
});

test('hmac: the run is keyed on the v1 that was verified; a header with two v1 (or two t) is refused, so no other value can key it', () => {
  const request = signed(NOW);
  const v1 = /v1=([0-9a-f]{64})/.exec(request.header)?.[1] ?? '';
  const check = checkHmacSignature(SECRET, { ...request, header: request.header.replace(v1, v1.toUpperCase()) }, new ReplayGuard(), NOW);
  assert.deepEqual(check, { valid: true, runKey: `hmac:${v1}` });
  const decoy = 'a'.repeat(64);
  for (const header of [`t=${NOW},v1=${decoy},v1=${v1}`, `t=${NOW},v1=${v1},v1=${decoy}`, `t=${NOW},t=${NOW - 1},v1=${v1}`]) {
    const guard = new ReplayGuard();
    assert.match(problemOf(checkHmacSignature(SECRET, { ...request, header }, guard, NOW)), /once/, header);
    assert.ok(checkHmacSignature(SECRET, request, guard, NOW).valid, 'the refusal used nothing up');
  }
});

test('github: the run is keyed on the SHA-256 of the verified body, whatever else the request says', () => {
  const body = Buffer.from('{"ref":"refs/heads/main"}');
  const header = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
  const check = checkGithubSignature(SECRET, { method: 'POST', url: '/ci/github', body, header });
  assert.deepEqual(check, { valid: true, runKey: `github:${createHash('sha256').update(body).digest('base64url')}` });
  assert.deepEqual(checkGithubSignature(SECRET, { method: 'POST', url: '/ci/other', body, header }), check);
  assert.match(problemOf(checkGithubSignature(SECRET, { method: 'POST', url: '/ci/github', body: Buffer.from('{}'), header })), /does not match/);
});
