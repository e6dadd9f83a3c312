// Script headers and declared parameters, in process and table-driven: each row is one header
// (or one request's parameters) and what armhook makes of it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AppError } from '../../server/errors.ts';
import { parseScriptHeader, type ParamSpec, type ScriptHeader } from '../../server/hooks/header.ts';
import { applyDeclarations, collectParams, maskedParams, secretValues } from '../../server/hooks/params.ts';

const spec = (name: string, fields: Partial<ParamSpec> = {}): ParamSpec => ({
  name,
  required: false,
  secret: false,
  pattern: undefined,
  default: undefined,
  description: '',
  from: undefined,
  ...fields,
});
const header = (fields: Partial<ScriptHeader>): ScriptHeader => ({
  description: '',
  params: undefined,
  anyParams: false,
  timeout: undefined,
  concurrency: undefined,
  respond: undefined,
  ...fields,
});

describe('parseScriptHeader: what a header declares', () => {
  const cases: Array<[string, string, ScriptHeader]> = [
    ['no header at all', '#!/bin/sh\necho hi\n', header({})],
    ['description over two lines', '#!/bin/sh\n# @description Create\n# @description a VM\n', header({ description: 'Create a VM' })],
    ['@params none', '# @params none\n', header({ params: [] })],
    ['@params any with one secret', '# @params any\n# @param pw secret\n', header({ params: [spec('pw', { secret: true })], anyParams: true })],
    [
      'every word of @param',
      '# @param vmname required pattern=[a-z]+ The VM name\n# @param pw secret Admin password\n# @param size default=B1s optional VM size\n',
      header({
        params: [
          spec('vmname', { required: true, pattern: '[a-z]+', description: 'The VM name' }),
          spec('pw', { secret: true, description: 'Admin password' }),
          spec('size', { default: 'B1s', description: 'VM size' }),
        ],
      }),
    ],
    ['@timeout in seconds', '# @timeout 1800\n', header({ timeout: 1800 })],
    ['@concurrency per hook', '# @concurrency 2\n', header({ concurrency: { limit: 2, per: [], caseSensitive: false } })],
    [
      '@concurrency per two parameters, case-sensitive',
      '# @param rg\n# @param name\n# @concurrency 1 per rg, name case-sensitive\n',
      header({ params: [spec('rg'), spec('name')], concurrency: { limit: 1, per: ['rg', 'name'], caseSensitive: true } }),
    ],
    ['the header ends at the first line that is not a comment', '#!/bin/sh\n# @timeout 5\necho\n# @timeout 9\n', header({ timeout: 5 })],
    ['CRLF line ends', '#!/bin/sh\r\n# @timeout 7\r\n', header({ timeout: 7 })],
    ['@respond async', '# @respond async\n', header({ respond: 'async' })],
    [
      'values from a JSON Pointer or a header (its name lower-cased)',
      '# @param ref from=/ref\n# @param sig from=header:X-Sig\n',
      header({ params: [spec('ref', { from: { pointer: '/ref' } }), spec('sig', { from: { header: 'x-sig' } })] }),
    ],
    ['directives of other tools are ignored', '# @shellcheck disable=SC2086\n# @timeout 3\n', header({ timeout: 3 })],
  ];
  for (const [name, text, expected] of cases) {
    test(name, () => assert.deepEqual(parseScriptHeader(text, 'x.sh'), expected));
  }
});

describe('parseScriptHeader: a header armhook refuses names the file and line and says what to fix', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['@timeout of zero', '# @timeout 0\n', /^x\.sh:1: @timeout takes whole seconds from 1 to 2147483/],
    ['@timeout past what a timer holds', '#!/bin/sh\n# @timeout 2147484\n', /^x\.sh:2: @timeout/],
    ['@timeout that is not a number', '# @timeout soon\n', /got "soon"/],
    ['@concurrency of zero', '# @concurrency 0\n', /@concurrency takes "N"/],
    [
      '@concurrency per an undeclared parameter',
      '# @param rg\n# @concurrency 1 per name\n',
      /^x\.sh: @concurrency is per "name", which is not a declared parameter/,
    ],
    ['@respond with anything but async', '# @respond later\n', /@respond only takes "async"/],
    ['from= that is neither a pointer nor a header', '# @param a from=ref\n', /from= of "a" takes a JSON Pointer/],
    ['@params with anything but none or any', '# @params some\n', /@params takes "none" \(no parameters\) or "any"/],
    ['@params none and @params any together', '# @params none\n# @params any\n', /contradict each other/],
    ['@param with an upper-case name', '# @param VM\n', /@param needs a name matching/],
    ['@param without a name', '# @param\n', /@param needs a name/],
    ['@param declared twice', '# @param a\n# @param a\n', /^x\.sh:2: parameter "a" is declared twice/],
    ['a pattern that is no regular expression', '# @param a pattern=[\n', /pattern of "a" is not a valid regular expression/],
    ['a default its own pattern refuses', '# @param a pattern=[0-9]+ default=x\n', /default of "a" does not match its own pattern/],
  ];
  for (const [name, text, message] of cases) {
    test(name, () => {
      assert.throws(
        () => parseScriptHeader(text, 'x.sh'),
        (err: unknown) =>
          err instanceof AppError &&
          err.status === 500 &&
          err.code === 'hook_invalid' &&
          message.test(err.message) &&
          err.message.endsWith('Fix the script header; nothing was run.'),
      );
    });
  }
});

describe("applyDeclarations: a request's parameters against what the hook declares", () => {
  const declared = [spec('rg', { required: true, pattern: '[a-z]+' }), spec('size', { default: 'small' }), spec('pw', { secret: true })];
  const ok: Array<[string, Record<string, string>, Record<string, string>]> = [
    ['defaults fill in', { rg: 'web' }, { rg: 'web', size: 'small' }],
    ['a given value wins over the default', { rg: 'web', size: 'large', pw: 'x' }, { rg: 'web', size: 'large', pw: 'x' }],
  ];
  for (const [name, given, expected] of ok) {
    test(name, () =>
      assert.deepEqual(Object.fromEntries(applyDeclarations(new Map(Object.entries(given)), { params: declared, anyParams: false }, 'h')), expected),
    );
  }
  const refused: Array<[string, Record<string, string>, string, RegExp]> = [
    ['a missing required parameter', {}, 'missing_param', /hook "h" needs parameter "rg"/],
    ['an undeclared parameter, naming those it takes', { rg: 'a', colour: 'red' }, 'unknown_param', /has no parameter "colour"; it takes: rg, size, pw/],
    ['a value its pattern refuses (the pattern matches the whole value)', { rg: 'web1' }, 'invalid_param', /parameter "rg" of hook "h" must match \[a-z\]\+/],
  ];
  for (const [name, given, code, message] of refused) {
    test(name, () => {
      assert.throws(
        () => applyDeclarations(new Map(Object.entries(given)), { params: declared, anyParams: false }, 'h'),
        (err: unknown) => err instanceof AppError && err.status === 400 && err.code === code && message.test(err.message),
      );
    });
  }
  test('a refused value is never echoed (it may be a secret)', () => {
    assert.throws(
      () => applyDeclarations(new Map([['rg', 'Secret-Value']]), { params: declared, anyParams: false }, 'h'),
      (err: Error) => !err.message.includes('Secret-Value'),
    );
  });
  test('a hook that declares nothing takes any valid name; @params none takes none', () => {
    assert.deepEqual(Object.fromEntries(applyDeclarations(new Map([['any', '1']]), { params: undefined, anyParams: false }, 'h')), { any: '1' });
    assert.throws(() => applyDeclarations(new Map([['any', '1']]), { params: [], anyParams: false }, 'h'), /it takes no parameters/);
    // @params any: other names pass through, the declared ones keep their rules.
    assert.deepEqual(
      Object.fromEntries(
        applyDeclarations(
          new Map([
            ['any', '1'],
            ['rg', 'web'],
          ]),
          { params: declared, anyParams: true },
          'h',
        ),
      ),
      { any: '1', rg: 'web', size: 'small' },
    );
    assert.throws(() => applyDeclarations(new Map([['any', '1']]), { params: declared, anyParams: true }, 'h'), /needs parameter "rg"/);
  });
  test('secrets are masked in what is stored and collected for masking output', () => {
    const params = new Map([
      ['rg', 'web'],
      ['pw', 'hunter2'],
    ]);
    assert.deepEqual(maskedParams(params, declared), { rg: 'web', pw: '***' });
    assert.deepEqual(secretValues(params, declared), ['hunter2']);
  });
});

describe('collectParams: where parameters come from', () => {
  const cases: Array<[string, string, string | undefined, string, Record<string, string>]> = [
    ['the query string', 'a=1&b=two', undefined, '', { a: '1', b: 'two' }],
    ['hyphens fold to underscores', 'vm-name=x', undefined, '', { vm_name: 'x' }],
    ['a form body, with the query', 'a=1', 'application/x-www-form-urlencoded', 'b=2', { a: '1', b: '2' }],
    [
      'a JSON body: top-level strings, numbers as written, booleans',
      '',
      'application/json; charset=utf-8',
      '{"s":"x","n":1.50,"t":false,"o":{"k":1}}',
      { s: 'x', n: '1.50', t: 'false' },
    ],
    ['a +json media type', '', 'application/vnd.x+json', '{"a":"b"}', { a: 'b' }],
    ['any other body is stdin only', 'a=1', 'text/plain', 'b=2', { a: '1' }],
    ['a JSON array is stdin only', '', 'application/json', '[1,2]', {}],
  ];
  for (const [name, query, type, body, expected] of cases) {
    test(name, () => assert.deepEqual(Object.fromEntries(collectParams(query, type, Buffer.from(body))), expected));
  }
  const refused: Array<[string, string, string | undefined, string, string]> = [
    ['an upper-case name', 'A=1', undefined, '', 'bad_param_name'],
    ['a proxy variable', 'https_proxy=x', undefined, '', 'denied_param_name'],
    ['a name given twice (query and body)', 'a=1', 'application/x-www-form-urlencoded', 'a=2', 'duplicate_param'],
    ['a NUL in a value', 'a=%00', undefined, '', 'bad_param_value'],
    ['a lone surrogate in JSON', '', 'application/json', '{"a":"\\ud800"}', 'bad_param_value'],
    ['malformed JSON', '', 'application/json', '{', 'bad_json'],
    ['a value over the size limit', `a=${'x'.repeat(128 * 1024 + 1)}`, undefined, '', 'param_too_large'],
  ];
  for (const [name, query, type, body, code] of refused) {
    test(`refused: ${name}`, () => {
      assert.throws(
        () => collectParams(query, type, Buffer.from(body)),
        (err: unknown) => err instanceof AppError && err.status === 400 && err.code === code,
      );
    });
  }
});
