import type { ScriptHook } from '../hooks/index.ts';

/** A hook as the catalog (GET /hooks, GET /<hook>) shows it. */
export interface HookDescription {
  path: string;
  method: 'GET' | 'POST';
  kind: 'script' | 'handler';
  description: string;
  /** null: the script declares nothing and takes any valid parameter name. */
  params: Array<{ name: string; required: boolean; secret: boolean; pattern?: string; default?: string; description: string; from?: string }> | null;
  /** Present (true) when the script says `@params any`: names beyond `params` are accepted too. */
  anyParams?: true;
  timeout?: number;
  /** 'async': answers 202 unless the caller asks for a stream or JSON. */
  respond?: 'async';
  /** `document`: the request body is the handler's input (a template): parameters go in the query. */
  body?: 'document';
}

export function describeScript(hook: ScriptHook): HookDescription {
  const params = hook.header.params?.map((p) => ({
    name: p.name,
    required: p.required,
    secret: p.secret,
    ...(p.pattern !== undefined ? { pattern: p.pattern } : {}),
    ...(p.default !== undefined && !p.secret ? { default: p.default } : {}),
    description: p.description,
    // Where the value comes from when not a parameter of that name: a JSON Pointer into the body or a header.
    ...(p.from !== undefined ? { from: 'header' in p.from ? `header:${p.from.header}` : p.from.pointer } : {}),
  }));
  return {
    path: `/${hook.path}`,
    method: 'POST',
    kind: 'script',
    description: hook.header.description,
    params: params ?? null,
    ...(hook.header.anyParams ? { anyParams: true as const } : {}),
    ...(hook.header.timeout !== undefined ? { timeout: hook.header.timeout } : {}),
    ...(hook.header.respond !== undefined ? { respond: hook.header.respond } : {}),
  };
}
