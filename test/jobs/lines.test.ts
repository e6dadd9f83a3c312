// LineSplitter against a reference: the same text cut into chunks at every kind of place (inside
// CRLF, inside multi-byte characters) always gives the same lines.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineSplitter } from '../../server/jobs/index.ts';

/** The lines a whole text has: CR, LF and CRLF each end one; a last unterminated line counts. */
function reference(text: string): string[] {
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

function splitInChunks(bytes: Buffer, cuts: number[]): string[] {
  const splitter = new LineSplitter();
  const lines: string[] = [];
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    lines.push(...splitter.push(bytes.subarray(at, cut)));
    at = cut;
  }
  lines.push(...splitter.end());
  return lines;
}

const SAMPLES = [
  'one\ntwo\nthree\n',
  'crlf\r\nline\r\n\r\nafter empty\r\n',
  'cr only\rnext\rlast',
  'mixed\n\r\n\r\r\nend',
  'ünïcödé ✓ 𝄞 emoji 😀\nsecond 😀\r\nthird',
  '\n\n\r\r',
  'no line end at all',
];

test('every sample gives the reference lines, whole and cut at every byte', () => {
  for (const sample of SAMPLES) {
    const bytes = Buffer.from(sample);
    const expected = reference(sample);
    assert.deepEqual(splitInChunks(bytes, []), expected, JSON.stringify(sample));
    for (let cut = 0; cut <= bytes.length; cut++) assert.deepEqual(splitInChunks(bytes, [cut]), expected, `${JSON.stringify(sample)} cut at ${cut}`);
  }
});

test('random texts cut at random places (seeded) give the reference lines', () => {
  let seed = 42;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = ['a', 'b', '\n', '\r', '\r\n', 'é', '😀', ' '];
  for (let round = 0; round < 300; round++) {
    let text = '';
    const length = random(200);
    for (let i = 0; i < length; i++) text += alphabet[random(alphabet.length)];
    const bytes = Buffer.from(text);
    const cuts = [...new Set(Array.from({ length: random(6) }, () => random(bytes.length + 1)))].sort((a, b) => a - b);
    assert.deepEqual(splitInChunks(bytes, cuts), reference(text), `${JSON.stringify(text)} cut at ${cuts.join(',')}`);
  }
});

test('a line longer than the limit is cut into pieces, never inside a surrogate pair', () => {
  const splitter = new LineSplitter(8);
  const lines = [...splitter.push(Buffer.from('abcdefg😀hijklmnop\nshort\n')), ...splitter.end()];
  assert.deepEqual(lines, ['abcdefg', '😀hijklm', 'nop', 'short']);
});
