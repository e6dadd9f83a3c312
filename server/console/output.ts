import { parseAnsi, styleClasses, hasEscapes, type Segment, type Style } from './ansi.ts';

type Kind = 'stdout' | 'stderr' | 'note';

interface Line {
  kind: Kind;
  text: string;
  /** The style the line starts with (carried from earlier lines). */
  style: Style | null;
  /** Parsed only for lines with escapes. */
  segments: Segment[] | null;
}

/** Rows drawn beyond the visible ones, so a small scroll shows no blank. */
const OVERSCAN = 30;
/** Lines kept in the page; beyond it the oldest go (the whole log stays at /jobs/<id>/log). */
export const MAX_LINES = 1_000_000;

/**
 * A job's output, virtualised: every line is kept as data, only the rows in view are in the
 * DOM (a few dozen nodes whatever the length), and appends are drawn once per frame. Follows
 * the end unless the reader scrolled up; `follow()` goes back to the end.
 */
export class OutputView {
  readonly element: HTMLElement;
  readonly #spacer: HTMLElement;
  readonly #rows: HTMLElement;
  readonly #lines: Line[] = [];
  readonly #styles: Record<'stdout' | 'stderr', Style | null> = { stdout: null, stderr: null };
  readonly #onFollowChange: (following: boolean) => void;
  #dropped = 0;
  #lineHeight = 18;
  #following = true;
  #frame = 0;
  #drawn = { first: -1, last: -1, total: -1 };

  constructor(onFollowChange: (following: boolean) => void = () => undefined) {
    this.#onFollowChange = onFollowChange;
    this.#rows = document.createElement('div');
    this.#rows.className = 'rows';
    this.#spacer = document.createElement('div');
    this.#spacer.className = 'spacer';
    this.#spacer.appendChild(this.#rows);
    this.element = document.createElement('div');
    this.element.className = 'output';
    this.element.tabIndex = 0;
    this.element.setAttribute('role', 'log');
    this.element.setAttribute('aria-label', 'job output');
    this.element.appendChild(this.#spacer);
    this.element.addEventListener('scroll', () => {
      const atEnd = this.element.scrollTop + this.element.clientHeight >= this.element.scrollHeight - this.#lineHeight * 2;
      if (atEnd !== this.#following) {
        this.#following = atEnd;
        this.#onFollowChange(atEnd);
      }
      this.#schedule();
    });
  }

  get lineCount(): number {
    return this.#lines.length + this.#dropped;
  }

  get following(): boolean {
    return this.#following;
  }

  append(text: string, kind: Kind): void {
    let line: Line;
    if (kind === 'note') line = { kind, text, style: null, segments: null };
    else {
      const start = this.#styles[kind];
      if (hasEscapes(text)) {
        const { segments, end } = parseAnsi(text, start);
        this.#styles[kind] = end;
        line = { kind, text, style: start, segments };
      } else line = { kind, text, style: start, segments: null };
    }
    this.#lines.push(line);
    if (this.#lines.length > MAX_LINES) {
      this.#lines.splice(0, this.#lines.length - MAX_LINES);
      this.#dropped++;
    }
    this.#schedule();
  }

  follow(): void {
    this.#following = true;
    this.#onFollowChange(true);
    this.#schedule();
  }

  /** The rows in the DOM now (for tests: proves the view stays small). */
  get renderedRows(): number {
    return this.#rows.childElementCount;
  }

  #schedule(): void {
    if (this.#frame === 0) this.#frame = requestAnimationFrame(() => this.#draw());
  }

  #draw(): void {
    this.#frame = 0;
    const first0 = this.#rows.firstElementChild as HTMLElement | null;
    if (first0 && first0.offsetHeight > 0) this.#lineHeight = first0.offsetHeight;
    const total = this.#lines.length;
    this.#spacer.style.height = `${total * this.#lineHeight}px`;
    if (this.#following) this.element.scrollTop = this.element.scrollHeight;
    const top = this.element.scrollTop;
    const first = Math.max(0, Math.floor(top / this.#lineHeight) - OVERSCAN);
    const last = Math.min(total, Math.ceil((top + this.element.clientHeight) / this.#lineHeight) + OVERSCAN);
    if (first === this.#drawn.first && last === this.#drawn.last && total === this.#drawn.total) return;
    this.#drawn = { first, last, total };
    const rows: HTMLElement[] = [];
    for (let i = first; i < last; i++) rows.push(this.#row(i));
    this.#rows.replaceChildren(...rows);
    this.#rows.style.transform = `translateY(${first * this.#lineHeight}px)`;
  }

  #row(index: number): HTMLElement {
    const line = this.#lines[index] as Line;
    const row = document.createElement('div');
    row.className = `line ${line.kind}`;
    const number = document.createElement('span');
    number.className = 'ln';
    number.textContent = String(index + this.#dropped + 1);
    row.appendChild(number);
    const text = document.createElement('span');
    text.className = 'text';
    if (line.segments) for (const segment of line.segments) text.appendChild(span(segment.text, segment.style));
    else if (line.style) text.appendChild(span(line.text, line.style));
    else text.textContent = line.text;
    row.appendChild(text);
    return row;
  }
}

function span(text: string, style: Style | null): Node {
  if (!style) return document.createTextNode(text);
  const element = document.createElement('span');
  element.className = styleClasses(style);
  // CSSOM, not a style attribute: allowed by the console's Content-Security-Policy.
  if (typeof style.fg === 'string') element.style.color = style.fg;
  if (typeof style.bg === 'string') element.style.backgroundColor = style.bg;
  element.textContent = text;
  return element;
}
