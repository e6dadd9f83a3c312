import { AppError, quote } from '../errors.ts';
import { anchored, type ParamSpec, type ScriptHeader } from './header.ts';

/** Limits on what a caller can pass as parameters (each becomes an environment variable). */
export const PARAM_LIMITS = {
  count: 64,
  valueBytes: 8 * 1024,
  totalBytes: 64 * 1024,
} as const;

const NAME = /^[a-z][a-z0-9_]*$/;

/**
 * Names that change how common tools behave even in lower case (curl, wget, az, pip, git all
 * honour lower-case proxy variables), so a caller could redirect the script's traffic.
 */
export function isDeniedName(name: string): boolean {
  return name.endsWith('_proxy') || name === 'no_proxy';
}

export type ParamSource = 'query' | 'form' | 'json';

/** A number in a JSON body, as its source text: `1.0`, `1e400` and 20-digit integers stay as written. */
class JsonNumber {
  readonly source: string;
  constructor(source: string) {
    this.source = source;
  }
}

/**
 * JSON.parse, with numbers kept as their source text (the reviver's `context.source`, Node 22+).
 * Where the runtime gives no source text, numbers are refused rather than changed.
 */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text, ((_key: string, value: unknown, context?: { source?: string }) => {
      if (typeof value !== 'number') return value;
      if (context?.source === undefined) {
        throw new AppError(400, 'bad_json_number', `the JSON number ${quote(String(value))} can't be passed exactly on this Node.js; send it as a string`);
      }
      return new JsonNumber(context.source);
    }) as (key: string, value: unknown) => unknown);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError(400, 'bad_json', `the request body is not valid JSON: ${quote((err as Error).message)}`);
  }
}

/**
 * Collects name/value pairs from the query string and, for form or JSON bodies, from the body.
 * Hyphens in names fold to underscores. Throws AppError(400) on any name or value that can't
 * become an environment variable; nothing has run at that point.
 */
export function collectParams(
  rawQuery: string,
  contentType: string | undefined,
  body: Buffer,
  options: { jsonFields?: ReadonlySet<string> | undefined } = {},
): Map<string, string> {
  const params = new Map<string, string>();
  let total = 0;
  const add = (rawName: string, value: string, source: ParamSource): void => {
    const name = rawName.replaceAll('-', '_');
    if (!NAME.test(name)) {
      throw new AppError(
        400,
        'bad_param_name',
        `parameter name ${quote(rawName)} (${source}) is not allowed: names must match ${NAME.source} (lower case letters, digits, _ or -)`,
      );
    }
    if (isDeniedName(name)) {
      throw new AppError(400, 'denied_param_name', `parameter ${quote(name)} is refused: proxy variables change where scripts' tools send traffic`);
    }
    if (params.has(name)) throw new AppError(400, 'duplicate_param', `parameter ${quote(name)} is given more than once; give it once`);
    if (value.includes('\0'))
      throw new AppError(400, 'bad_param_value', `parameter ${quote(name)} contains a NUL byte, which cannot be passed in an environment variable`);
    // A lone UTF-16 surrogate (possible in JSON: "\ud800") has no UTF-8 form, so it can't be an environment value either.
    if (!value.isWellFormed()) throw new AppError(400, 'bad_param_value', `parameter ${quote(name)} is not valid Unicode (a lone surrogate); send UTF-8 text`);
    const bytes = Buffer.byteLength(value);
    if (bytes > PARAM_LIMITS.valueBytes) {
      throw new AppError(
        400,
        'param_too_large',
        `parameter ${quote(name)} is ${bytes} bytes; the limit is ${PARAM_LIMITS.valueBytes}. Send large input in the request body (it is the script's stdin)`,
      );
    }
    total += Buffer.byteLength(name) + bytes;
    if (total > PARAM_LIMITS.totalBytes)
      throw new AppError(400, 'params_too_large', `parameters total more than ${PARAM_LIMITS.totalBytes} bytes; send large input in the request body`);
    params.set(name, value);
    if (params.size > PARAM_LIMITS.count) throw new AppError(400, 'too_many_params', `more than ${PARAM_LIMITS.count} parameters`);
  };

  for (const [name, value] of new URLSearchParams(rawQuery)) add(name, value, 'query');

  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (body.length > 0 && type === 'application/x-www-form-urlencoded') {
    for (const [name, value] of new URLSearchParams(body.toString('utf8'))) add(name, value, 'form');
  } else if (body.length > 0 && (type === 'application/json' || type.endsWith('+json'))) {
    const parsed = parseJson(body.toString('utf8'));
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      // Only top-level scalars become parameters; nested values stay in the body (stdin). A
      // declared hook takes only its declared names: the rest of a sender's document is not
      // parameters, so it is never refused.
      for (const [name, value] of Object.entries(parsed)) {
        if (options.jsonFields && !options.jsonFields.has(name)) continue;
        if (typeof value === 'string') add(name, value, 'json');
        else if (value instanceof JsonNumber) add(name, value.source, 'json');
        else if (typeof value === 'boolean') add(name, String(value), 'json');
      }
    }
  }
  return params;
}

/** The names a declared hook takes from a JSON body's fields (those without `from=`). */
export function jsonFieldNames(declared: ParamSpec[] | undefined): ReadonlySet<string> | undefined {
  return declared && new Set(declared.filter((spec) => spec.from === undefined).map((spec) => spec.name));
}

/** RFC 6901: the value at `pointer` in `doc`, or undefined. */
function atPointer(doc: unknown, pointer: string): unknown {
  let node = doc;
  for (const raw of pointer.split('/').slice(1)) {
    const token = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(node) && /^(?:0|[1-9]\d*)$/.test(token)) node = node[Number(token)];
    else if (node !== null && typeof node === 'object' && !Array.isArray(node) && Object.hasOwn(node, token)) node = (node as Record<string, unknown>)[token];
    else return undefined;
  }
  return node;
}

/**
 * Adds the values of `from=` parameters: a scalar of the JSON body at a JSON Pointer, or a
 * request header. They are validated afterwards like any parameter (applyDeclarations).
 */
export function addSourcedParams(
  params: Map<string, string>,
  declared: ParamSpec[] | undefined,
  input: { contentType: string | undefined; body: Buffer; headers: Record<string, string | string[] | undefined> },
): void {
  const sourced = (declared ?? []).filter((spec) => spec.from !== undefined);
  if (sourced.length === 0) return;
  let doc: unknown;
  let parsed = false;
  for (const spec of sourced) {
    const from = spec.from;
    if (from === undefined) continue;
    if (params.has(spec.name))
      throw new AppError(
        400,
        'sourced_param',
        `parameter "${spec.name}" comes from ${'header' in from ? `the ${from.header} header` : `the body (${from.pointer})`}; do not send it by name`,
      );
    let value: unknown;
    if ('header' in from) {
      const header = input.headers[from.header];
      value = Array.isArray(header) ? header.join(', ') : header;
    } else {
      if (!parsed) {
        parsed = true;
        const type = (input.contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
        if (input.body.length > 0 && (type === 'application/json' || type.endsWith('+json'))) doc = parseJson(input.body.toString('utf8'));
      }
      value = atPointer(doc, from.pointer);
      if (value instanceof JsonNumber) value = value.source;
      else if (value !== undefined && value !== null && typeof value === 'object')
        throw new AppError(400, 'invalid_param', `parameter "${spec.name}" comes from ${from.pointer} in the body, which is not a string, number or boolean`);
    }
    if (value === undefined || value === null) continue;
    // Objects were refused above: what is left is a string, a number's source text or a boolean.
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (text.includes('\0') || !text.isWellFormed() || Buffer.byteLength(text) > PARAM_LIMITS.valueBytes) {
      throw new AppError(
        400,
        'invalid_param',
        `parameter "${spec.name}" (from ${'header' in from ? from.header : from.pointer}) is not usable as an environment value (NUL, invalid Unicode or over ${PARAM_LIMITS.valueBytes} bytes)`,
      );
    }
    params.set(spec.name, text);
  }
}

/**
 * Applies a hook's declarations: unknown names (unless the hook says `@params any`), missing
 * required ones and values that don't match their pattern are refused; defaults fill in.
 * Undeclared hooks accept any valid name.
 */
export function applyDeclarations(params: Map<string, string>, header: Pick<ScriptHeader, 'params' | 'anyParams'>, hook: string): Map<string, string> {
  const declared = header.params;
  if (declared === undefined) return params;
  const byName = new Map(declared.map((spec) => [spec.name, spec]));
  const result = new Map<string, string>();
  for (const [name, value] of params) {
    if (byName.has(name)) continue;
    if (!header.anyParams) {
      const known = declared.length > 0 ? `it takes: ${declared.map((p) => p.name).join(', ')}` : 'it takes no parameters';
      throw new AppError(400, 'unknown_param', `hook "${hook}" has no parameter ${quote(name)}; ${known}`);
    }
    result.set(name, value);
  }
  for (const spec of declared) {
    const value = params.get(spec.name) ?? spec.default;
    if (value === undefined) {
      if (spec.required)
        throw new AppError(400, 'missing_param', `hook "${hook}" needs parameter "${spec.name}"${spec.description ? ` (${spec.description})` : ''}`);
      continue;
    }
    if (spec.pattern !== undefined && !new RegExp(anchored(spec.pattern)).test(value)) {
      // Never echo the value: it may be a secret.
      throw new AppError(400, 'invalid_param', `parameter "${spec.name}" of hook "${hook}" must match ${spec.pattern}`);
    }
    result.set(spec.name, value);
  }
  return result;
}

/** Secret parameter values, for masking. */
export function secretValues(params: Map<string, string>, declared: ParamSpec[] | undefined): string[] {
  if (!declared) return [];
  return declared
    .filter((spec) => spec.secret)
    .map((spec) => params.get(spec.name))
    .filter((v): v is string => typeof v === 'string' && v.length > 0);
}

/** The parameters as stored and shown: secrets replaced by ***. */
export function maskedParams(params: Map<string, string>, declared: ParamSpec[] | undefined): Record<string, string> {
  const secret = new Set((declared ?? []).filter((s) => s.secret).map((s) => s.name));
  const out: Record<string, string> = {};
  for (const [name, value] of params) out[name] = secret.has(name) ? '***' : value;
  return out;
}
