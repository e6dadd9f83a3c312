import { FINAL_STATUSES } from '../jobs/types.ts';

/** Builds elements from text only: strings become text nodes, never markup. */
export type Child = Node | string | number | null | undefined | false;

export interface Props {
  class?: string;
  /** Attributes set with setAttribute (href, name, type, aria-*, data-*…). */
  attrs?: Record<string, string | undefined>;
  /** Event listeners. */
  on?: Partial<Record<keyof HTMLElementEventMap, (event: Event) => void>>;
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (props.class) element.className = props.class;
  for (const [name, value] of Object.entries(props.attrs ?? {})) if (value !== undefined) element.setAttribute(name, value);
  for (const [type, listener] of Object.entries(props.on ?? {})) element.addEventListener(type, listener);
  append(element, children);
  return element;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

export function isFinal(status: string): boolean {
  return (FINAL_STATUSES as readonly string[]).includes(status);
}

/** A job's status as its word, coloured by class. */
export function statusBadge(status: string): HTMLElement {
  return h('span', { class: `status status-${status}`, attrs: { 'data-status': status } }, status);
}

/** A link to a job's page, by its id. */
export function jobLink(id: string): HTMLAnchorElement {
  return h('a', { class: 'job-id', attrs: { href: `/ui/jobs/${encodeURIComponent(id)}` } }, id);
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function message(text: string, kind: 'error' | 'note' = 'error'): HTMLElement {
  return h('p', { class: kind, attrs: { role: kind === 'error' ? 'alert' : 'status' } }, text);
}
