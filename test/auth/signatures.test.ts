// The hmac scheme's time window, exactly at its edges: the clock is passed in, so the boundary is
// tested here rather than over a socket, where the time between signing and checking varies.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { HMAC_TOLERANCE_SECONDS, ReplayGuard, hmacSignatureProblem } from '../../server/auth/signatures.ts';

const SECRET = Buffer.from('s3cret');
const NOW = 1_800_000_000;

function signed(t: number): { method: string; url: string; body: Buffer; header: string } {
  const body = Buffer.from('{"version":"1"}');
  const v1 = createHmac('sha256', SECRET).update(`${t}.POST./deploy/app?tag=x.`).update(body).digest('hex');
  return { method: 'POST', url: '/deploy/app?tag=x', body, header: `t=${t},v1=${v1}` };
}

for (const [offset, accepted] of [
  [-HMAC_TOLERANCE_SECONDS - 1, false],
  [-HMAC_TOLERANCE_SECONDS, true],
  [0, true],
  [HMAC_TOLERANCE_SECONDS, true],
  [HMAC_TOLERANCE_SECONDS + 1, false],
] as const) {
  test(`hmac: a signature made ${offset} s from the server's clock is ${accepted ? 'accepted' : 'refused'}`, () => {
    const problem = hmacSignatureProblem(SECRET, signed(NOW + offset), new ReplayGuard(), NOW);
    if (accepted) assert.equal(problem, undefined);
    else assert.match(problem ?? '', /more than 300 s from the server's/);
  });
}

test('hmac: a signature inside the window is accepted once', () => {
  const guard = new ReplayGuard();
  const request = signed(NOW - 10);
  assert.equal(hmacSignatureProblem(SECRET, request, guard, NOW), undefined);
  assert.match(hmacSignatureProblem(SECRET, request, guard, NOW + 1) ?? '', /already used/);
});
