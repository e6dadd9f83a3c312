import type { IncomingHttpHeaders } from 'node:http';

export type RunMode = 'sse' | 'text' | 'json' | 'async';

const PRODUCED = ['text/event-stream', 'application/json', 'text/plain'] as const;

/**
 * How a run answers: `Prefer: respond-async` → 202; otherwise the best of SSE, JSON and plain
 * text by the Accept header's q-values; when the caller names none of them (curl's and GitHub's
 * catch-all media range), SSE — or 202 for a hook that declares `# @respond async`.
 */
export function runMode(headers: IncomingHttpHeaders, unnamed: 'sse' | 'async' = 'sse'): RunMode {
  const prefer = String(headers.prefer ?? '').toLowerCase();
  if (prefer.split(',').some((p) => p.trim().split(';')[0]?.trim() === 'respond-async')) return 'async';
  const accept = headers.accept;
  if (!accept) return unnamed;
  let best: { type: string; q: number } | undefined;
  for (const part of accept.split(',')) {
    const [rawType, ...rawParams] = part.split(';');
    const type = (rawType ?? '').trim().toLowerCase();
    let q = 1;
    for (const p of rawParams) {
      const [k, v] = p.split('=').map((s) => s.trim());
      if (k === 'q' && v !== undefined) q = Number(v) || 0;
    }
    const produced = (PRODUCED as readonly string[]).includes(type) ? type : undefined;
    if (produced && q > 0 && (!best || q > best.q)) best = { type: produced, q };
  }
  if (best?.type === 'application/json') return 'json';
  if (best?.type === 'text/plain') return 'text';
  if (best?.type === 'text/event-stream') return 'sse';
  return unnamed;
}
