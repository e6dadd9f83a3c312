import { RequestError } from '../errors.ts';

/** One `# @param` declaration. */
export interface ParamSpec {
  name: string;
  required: boolean;
  secret: boolean;
  /** Source of the pattern as written; matching is anchored (the whole value). */
  pattern: string | undefined;
  default: string | undefined;
  description: string;
}

/** What a script declares about itself in its comment header. */
export interface ScriptHeader {
  description: string;
  /** undefined: the script declares nothing, so any valid parameter name is accepted. */
  params: ParamSpec[] | undefined;
  /** Seconds; overrides the server's default timeout. */
  timeout: number | undefined;
}

const NAME = /^[a-z][a-z0-9_]*$/;

/**
 * Parses the leading comment block of a script:
 *
 *   # @description Create a VM
 *   # @param vmname required pattern=^[a-z][a-z0-9-]{0,62}$ The VM name
 *   # @param pw required secret Admin password
 *   # @param size default=Standard_B1s VM size
 *   # @timeout 1800
 *   # @params none            (declares that the hook takes no parameters)
 *
 * Errors name the file and line, so `armhook check` and the caller can point at it.
 */
export function parseScriptHeader(text: string, file: string): ScriptHeader {
  const header: ScriptHeader = { description: '', params: undefined, timeout: undefined };
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
        if (!/^\d+$/.test(rest) || Number(rest) < 1) throw invalid(where, `@timeout takes whole seconds ≥ 1, got "${rest}"`);
        header.timeout = Number(rest);
        break;
      }
      case 'params':
        if (rest !== 'none') throw invalid(where, `@params only takes "none" (to declare no parameters), got "${rest}"`);
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
  return header;
}

function parseParam(rest: string, where: string): ParamSpec {
  const words = rest.split(/\s+/).filter(Boolean);
  const name = words.shift();
  if (!name || !NAME.test(name)) throw invalid(where, `@param needs a name matching ${NAME.source}, got "${name ?? ''}"`);
  const spec: ParamSpec = { name, required: false, secret: false, pattern: undefined, default: undefined, description: '' };
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
    else break;
    words.shift();
  }
  spec.description = words.join(' ');
  if (spec.default !== undefined && spec.pattern !== undefined && !new RegExp(anchored(spec.pattern)).test(spec.default)) {
    throw invalid(where, `default of "${name}" does not match its own pattern`);
  }
  return spec;
}

/** `pattern=` matches the whole value, whatever anchors the author wrote. */
export function anchored(pattern: string): string {
  return `^(?:${pattern})$`;
}

function invalid(where: string, message: string): RequestError {
  return new RequestError(500, 'hook_invalid', `${where}: ${message}. Fix the script header; nothing was run.`);
}
