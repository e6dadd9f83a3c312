// Masking by exact value: long secrets anywhere, short ones only as whole words.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SecretMasker } from '../../server/jobs/mask.ts';

test('a secret shorter than 4 characters is masked only as a whole word (pw=e must not eat every "e")', () => {
  const m = new SecretMasker(['e', 'x1', '-.*']);
  assert.equal(m.mask('hello there, e is the password'), 'hello there, *** is the password');
  assert.equal(m.mask('e'), '***');
  assert.equal(m.mask('pw=e;'), 'pw=***;');
  assert.equal(m.mask('ex1 x1y (x1) x1'), 'ex1 x1y (***) ***');
  assert.equal(m.mask('a-.*b and -.* alone'), 'a-.*b and *** alone', 'regex characters are literal');
  assert.equal(m.mask('ééé é'), 'ééé é', 'letters of any script count as word characters');
});

test('a secret of 4 or more characters is masked wherever it occurs, by exact value only', () => {
  const m = new SecretMasker(['hunter2', 'abcd']);
  assert.equal(m.mask('xhunter2x abcdabcd'), 'x***x ******');
  assert.equal(m.mask('2retnuh aHVudGVyMg== hun ter2'), '2retnuh aHVudGVyMg== hun ter2', 'reversed, encoded or split forms are not masked');
});

test('no secrets: nothing to do', () => {
  assert.equal(new SecretMasker([]).empty, true);
  assert.equal(new SecretMasker(['e']).empty, false);
});
