// HmacSha256 must give exactly what node's createHmac gives: the credential cache's keys depend on it.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { HmacSha256 } from '../../server/auth/hmac.ts';

test('RFC 4231 test case 2: key "Jefe"', () => {
  const hmac = new HmacSha256(Buffer.from('Jefe'));
  assert.equal(hmac.digest('what do ya want for nothing?', 'hex'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
});

test('RFC 4231 test case 6: a key longer than the block is hashed first', () => {
  const hmac = new HmacSha256(Buffer.alloc(131, 0xaa));
  assert.equal(
    hmac.digest('Test Using Larger Than Block-Size Key - Hash Key First', 'hex'),
    '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
  );
});

const keys = [Buffer.alloc(0), Buffer.alloc(32, 7), Buffer.alloc(64, 0xff), Buffer.alloc(65, 1)];
const messages = ['', 'a', '["user","pass:word"]', 'ünïcødé ✓ 🔑', 'x'.repeat(1000)];

for (const key of keys) {
  test(`same digests as createHmac with a ${key.length}-byte key, one instance reused`, () => {
    const hmac = new HmacSha256(key);
    for (const message of messages) {
      const expected = createHmac('sha256', key).update(message, 'utf8').digest();
      assert.deepEqual(hmac.digest(message), expected, JSON.stringify(message));
      assert.equal(hmac.digest(message, 'base64'), expected.toString('base64'));
    }
  });
}
