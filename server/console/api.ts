/** The console's calls: the same endpoints and rules as any other client of armhook. */

export type { JobRecord } from '../jobs/types.ts';

export interface HookParam {
  name: string;
  required: boolean;
  secret: boolean;
  pattern?: string;
  default?: string;
  description: string;
  /** Where the server takes the value from instead: `header:<name>` or a JSON Pointer into the body. */
  from?: string;
}

export interface Hook {
  path: string;
  method: 'GET' | 'POST';
  kind: 'script' | 'handler';
  description: string;
  params: HookParam[] | null;
  /** `document`: the body is the handler's input (a JSON template); parameters go in the query. */
  body?: 'document';
}

/** armhook's `{ error, message }`, with the HTTP status. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(path, { ...init, headers: { Accept: 'application/json', ...init.headers } });
  const text = await response.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const error = (body ?? {}) as { error?: string; message?: string };
    throw new ApiError(response.status, error.error ?? `http_${response.status}`, error.message ?? `${response.status} ${response.statusText}`);
  }
  return body as T;
}

export async function hooks(): Promise<Hook[]> {
  return (await api<{ hooks: Hook[] }>('/hooks')).hooks;
}
