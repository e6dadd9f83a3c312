/**
 * ANSI SGR colours and attributes, as terminals show them. Styles carry over from line to line
 * (a colour set on one line stays until reset); every other escape sequence (cursor movement,
 * erase, OSC titles) is dropped. The text is only ever put into text nodes.
 */

export interface Style {
  /** 0–15: a class (themable); a string: an rgb() colour from 256-colour or true-colour codes. */
  fg?: number | string;
  bg?: number | string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
}

export interface Segment {
  text: string;
  style: Style | null;
}

// CSI … final byte, OSC … BEL/ST, or a two-character escape.
// eslint-disable-next-line no-control-regex -- terminal escapes are control characters; finding them is this module's job
const ESCAPE = /\x1b(?:\[([0-9;:?<=>]*)[ -/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g;

export function hasEscapes(line: string): boolean {
  return line.includes('\x1b');
}

function cube(n: number): string {
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v}, ${v}, ${v})`;
  }
  const i = n - 16;
  const level = (x: number): number => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
}

/** Applies one SGR parameter list to a style; returns the new style (null: default). */
export function applySgr(style: Style | null, params: string): Style | null {
  const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  let next: Style = { ...(style ?? {}) };
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i] ?? 0;
    if (code === 0) next = {};
    else if (code === 1) next.bold = true;
    else if (code === 2) next.dim = true;
    else if (code === 3) next.italic = true;
    else if (code === 4) next.underline = true;
    else if (code === 22) next.bold = next.dim = false;
    else if (code === 23) next.italic = false;
    else if (code === 24) next.underline = false;
    else if (code >= 30 && code <= 37) next.fg = code - 30;
    else if (code >= 90 && code <= 97) next.fg = code - 90 + 8;
    else if (code === 39) delete next.fg;
    else if (code >= 40 && code <= 47) next.bg = code - 40;
    else if (code >= 100 && code <= 107) next.bg = code - 100 + 8;
    else if (code === 49) delete next.bg;
    else if (code === 38 || code === 48) {
      const key = code === 38 ? 'fg' : 'bg';
      if (codes[i + 1] === 5 && codes[i + 2] !== undefined) {
        const n = codes[i + 2] ?? 0;
        next[key] = n < 16 ? n : cube(Math.min(n, 255));
        i += 2;
      } else if (codes[i + 1] === 2 && codes[i + 4] !== undefined) {
        const [r, g, b] = [codes[i + 2], codes[i + 3], codes[i + 4]].map((v) => Math.max(0, Math.min(255, v ?? 0)));
        next[key] = `rgb(${r}, ${g}, ${b})`;
        i += 4;
      }
    }
  }
  const empty = Object.values(next).every((v) => v === undefined || v === false);
  return empty ? null : next;
}

/** Splits a line into styled segments, starting from the style the previous line ended with. */
export function parseAnsi(line: string, start: Style | null): { segments: Segment[]; end: Style | null } {
  const segments: Segment[] = [];
  let style = start;
  let last = 0;
  ESCAPE.lastIndex = 0;
  for (let match = ESCAPE.exec(line); match; match = ESCAPE.exec(line)) {
    if (match.index > last) segments.push({ text: line.slice(last, match.index), style });
    if (match[2] === 'm') style = applySgr(style, match[1] ?? '');
    last = ESCAPE.lastIndex;
  }
  if (last < line.length) segments.push({ text: line.slice(last), style });
  return { segments, end: style };
}

/** The classes of a style (colours 0–15 and attributes); rgb colours go to element.style. */
export function styleClasses(style: Style): string {
  const classes: string[] = [];
  if (typeof style.fg === 'number') classes.push(`fg${style.fg}`);
  if (typeof style.bg === 'number') classes.push(`bg${style.bg}`);
  if (style.bold) classes.push('sgr-bold');
  if (style.dim) classes.push('sgr-dim');
  if (style.italic) classes.push('sgr-italic');
  if (style.underline) classes.push('sgr-underline');
  return classes.join(' ');
}
