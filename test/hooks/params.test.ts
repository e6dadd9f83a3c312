// Parameter collection, in process: JSON numbers reach scripts exactly as written, and error
// messages quote at most a short, escaped prefix of what the caller sent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../server/errors.ts';
import { collectParams } from '../../server/hooks/params.ts';

const json = (text: string): Map<string, string> => collectParams('', 'application/json', Buffer.from(text));

test('JSON numbers become parameters exactly as written: big integers, 1.0, exponents, -0', () => {
  const params = json('{"a":12345678901234567890,"b":1.0,"d":1e400,"e":-0,"f":2.50E-3,"g":7}');
  assert.deepEqual(Object.fromEntries(params), { a: '12345678901234567890', b: '1.0', d: '1e400', e: '-0', f: '2.50E-3', g: '7' });
});

test('strings and booleans are unchanged; nested numbers are not parameters', () => {
  assert.deepEqual(Object.fromEntries(json('{"s":"1.0","t":true,"n":{"x":1.0},"arr":[1e400]}')), { s: '1.0', t: 'true' });
});

/** The AppError a call throws. */
function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AppError, String(err));
    return err;
  }
  assert.fail('expected an AppError');
}

test('a 1 MB form body of NULs is refused with a message of at most a short escaped prefix', () => {
  const err = refusal(() => collectParams('', 'application/x-www-form-urlencoded', Buffer.alloc(1024 * 1024)));
  assert.equal(err.status, 400);
  assert.ok(err.message.length < 600, `message is ${err.message.length} characters`);
  assert.ok(!err.message.includes('\0'), 'NULs are escaped');
  assert.match(err.message, /\\u0000.*more characters/);
});

test('every error that names caller input quotes at most a prefix of it', () => {
  const long = 'x'.repeat(100_000);
  const cases: Array<[string, () => unknown]> = [
    ['bad name (query)', () => collectParams(`${long.toUpperCase()}=1`, undefined, Buffer.alloc(0))],
    ['bad name (JSON)', () => json(`{"${'\\u0001'.repeat(50_000)}":1}`)],
    ['malformed JSON', () => json(`{"a": ${'['.repeat(20_000)}x`)],
    ['malformed JSON string', () => json(`"${long}`)],
  ];
  for (const [what, fn] of cases) {
    const err = refusal(fn);
    assert.ok(err.message.length < 600, `${what}: message is ${err.message.length} characters`);
  }
});
