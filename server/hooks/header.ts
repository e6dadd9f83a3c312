import { AppError } from '../errors.ts';

/** One `# @param` declaration. */
export interface ParamSpec {
  name: string;
  required: boolean;
  secret: boolean;
  /** Source of the pattern as written; matching is anchored (the whole value). */
  pattern: string | undefined;
  default: string | undefined;
  description: string;
  /** Where the value comes from instead of a parameter of that name: a JSON Pointer into the body, or a request header. */
  from: ParamFrom | undefined;
}

export type ParamFrom = { pointer: string } | { header: string };

/** What a script declares about itself in its comment header. */
export interface ScriptHeader {
  description: string;
  /** undefined: the script declares nothing, so any valid parameter name is accepted. */
  params: ParamSpec[] | undefined;
  /** `@params any`: the declared parameters keep their rules, and undeclared valid names are accepted too. */
  anyParams: boolean;
  /** Seconds; overrides the server's default timeout, and is the most a request may ask for. */
  timeout: number | undefined;
  /** At most `limit` runs at once, per distinct value of the `per` parameters (whole hook when empty). */
  /** Values of `per` compare case-insensitively unless `caseSensitive` (Azure names are case-insensitive). */
  concurrency: { limit: number; per: string[]; caseSensitive: boolean } | undefined;
  /** 'async': answer 202 unless the caller asked for SSE, text or JSON explicitly. */
  respond: 'async' | undefined;
}

const NAME = /^[a-z][a-z0-9_]*$/;

/**
 * Parses the leading comment block of a script:
 *
 *   # @description Create a VM
 *   # @param vmname required pattern=^[a-z][a-z0-9-]{0,62}$ The VM name
 *   # @param pw required secret Admin password
 *   # @param size default=Standard_B1s VM size
 *   # @timeout 1800           (seconds; also the most X-Hook-Timeout may ask for)
 *   # @concurrency 1 per rg   (at most one run at a time per value of rg, compared
 *                             case-insensitively; "1 per rg case-sensitive" compares exactly;
 *                             "1" alone: per hook)
 *   # @params none            (declares that the hook takes no parameters)
 *   # @respond async          (202 Accepted unless the caller asks for a stream or JSON)
 *   # @param ref from=/ref    (the value is the body's /ref, a JSON Pointer; from=header:X-Name: a header)
 *   # @params any             (takes undeclared parameters too; the declared ones keep their rules)
 *
 * Errors name the file and line, so `armhook check` and the caller can point at it.
 */
export function parseScriptHeader(text: string, file: string): ScriptHeader {
  const header: ScriptHeader = { description: '', params: undefined, anyParams: false, timeout: undefined, concurrency: undefined, respond: undefined };
  let noParams = false;
  const lines = text.split(/\r\n|\r|\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index] ?? '';
    if (index === 0 && line.startsWith('#!')) continue;
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (!trimmed.startsWith('#')) break;
    const match = /^#+\s*@(\w+)\s*(.*)$/.exec(trimmed);
    if (!match) continue;
    const directive = match[1] ?? '';
    const rest = (match[2] ?? '').trim();
    const where = `${file}:${index + 1}`;
    switch (directive) {
      case 'description':
        header.description = header.description ? `${header.description} ${rest}` : rest;
        break;
      case 'timeout': {
        // Node's timers hold at most 2^31-1 ms; a longer delay would fire at once.
        if (!/^\d+$/.test(rest) || Number(rest) < 1 || Number(rest) > 2147483)
          throw invalid(where, `@timeout takes whole seconds from 1 to 2147483 (24 days), got "${rest}"`);
        header.timeout = Number(rest);
        break;
      }
      case 'concurrency': {
        const m = /^(\d+)(?:\s+per\s+([a-z][a-z0-9_]*(?:\s*,\s*[a-z][a-z0-9_]*)*)(\s+case-sensitive)?)?$/.exec(rest);
        if (!m || Number(m[1]) < 1) throw invalid(where, `@concurrency takes "N" or "N per param[,param] [case-sensitive]" (e.g. "1 per rg"), got "${rest}"`);
        header.concurrency = { limit: Number(m[1]), per: m[2] ? m[2].split(',').map((p) => p.trim()) : [], caseSensitive: m[3] !== undefined };
        break;
      }
      case 'respond':
        if (rest !== 'async') throw invalid(where, `@respond only takes "async", got "${rest}"`);
        header.respond = 'async';
        break;
      case 'params':
        if (rest !== 'none' && rest !== 'any') throw invalid(where, `@params takes "none" (no parameters) or "any" (undeclared ones too), got "${rest}"`);
        if (rest === 'none') noParams = true;
        else header.anyParams = true;
        if (noParams && header.anyParams) throw invalid(where, '@params none and @params any contradict each other; keep one');
        header.params ??= [];
        break;
      case 'param': {
        const spec = parseParam(rest, where);
        header.params ??= [];
        if (header.params.some((p) => p.name === spec.name)) throw invalid(where, `parameter "${spec.name}" is declared twice`);
        header.params.push(spec);
        break;
      }
      default:
        // Unknown directives are someone else's (shellcheck, editors): ignore them.
        break;
    }
  }
  for (const name of header.concurrency?.per ?? []) {
    if (header.params && !header.params.some((p) => p.name === name)) {
      throw invalid(file, `@concurrency is per "${name}", which is not a declared parameter`);
    }
  }
  return header;
}

function parseParam(rest: string, where: string): ParamSpec {
  const words = rest.split(/\s+/).filter(Boolean);
  const name = words.shift();
  if (!name || !NAME.test(name)) throw invalid(where, `@param needs a name matching ${NAME.source}, got "${name ?? ''}"`);
  const spec: ParamSpec = { name, required: false, secret: false, pattern: undefined, default: undefined, description: '', from: undefined };
  while (words.length > 0) {
    const word = words[0] ?? '';
    if (word === 'required') spec.required = true;
    else if (word === 'optional') spec.required = false;
    else if (word === 'secret') spec.secret = true;
    else if (word.startsWith('pattern=')) {
      spec.pattern = word.slice('pattern='.length);
      try {
        new RegExp(anchored(spec.pattern));
      } catch (err) {
        throw invalid(where, `pattern of "${name}" is not a valid regular expression: ${(err as Error).message}`);
      }
    } else if (word.startsWith('default=')) spec.default = word.slice('default='.length);
    else if (word.startsWith('from=')) spec.from = parseFrom(word.slice('from='.length), name, where);
    else break;
    words.shift();
  }
  spec.description = words.join(' ');
  if (spec.default !== undefined && spec.pattern !== undefined && !new RegExp(anchored(spec.pattern)).test(spec.default)) {
    throw invalid(where, `default of "${name}" does not match its own pattern`);
  }
  return spec;
}

/** `from=/json/pointer` or `from=header:Name`. */
function parseFrom(value: string, name: string, where: string): ParamFrom {
  if (value.startsWith('header:')) {
    const header = value.slice('header:'.length);
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(header)) throw invalid(where, `from=header: of "${name}" needs a header name, got "${header}"`);
    return { header: header.toLowerCase() };
  }
  if (!value.startsWith('/')) throw invalid(where, `from= of "${name}" takes a JSON Pointer (/ref, /pusher/name) or header:Name, got "${value}"`);
  return { pointer: value };
}

/** `pattern=` matches the whole value, whatever anchors the author wrote. */
export function anchored(pattern: string): string {
  return `^(?:${pattern})$`;
}

function invalid(where: string, message: string): AppError {
  return new AppError(500, 'hook_invalid', `${where}: ${message}. Fix the script header; nothing was run.`);
}
