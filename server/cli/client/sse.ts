export interface SseMessage {
  /** The `id:` field of this event, when it had one. */
  id: string | undefined;
  /** `message` when the event names no type (armhook's stdout lines). */
  event: string;
  data: string;
}

/**
 * Server-sent events parsed as the HTML standard's "interpret an event stream" says: CR, LF and
 * CRLF end lines; `:` lines are comments; an event is dispatched at a blank line, so an event cut
 * by a dropped connection is never seen (and its id never counted as received). Takes decoded
 * text (no Node or DOM API), so the CLI and the web console share it.
 */
export class SseParser {
  #buffer = '';
  #pendingCr = false;
  #id: string | undefined;
  #event = '';
  #data: string[] = [];

  push(chunk: string): SseMessage[] {
    let text = chunk;
    // A CR at the end of the last chunk and an LF at the start of this one are one line end.
    if (this.#pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.#pendingCr = text.endsWith('\r');
    this.#buffer += text;
    const out: SseMessage[] = [];
    let start = 0;
    for (let i = 0; i < this.#buffer.length; i++) {
      const c = this.#buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.#line(this.#buffer.slice(start, i), out);
      if (c === 13 && this.#buffer.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.#buffer = this.#buffer.slice(start);
    return out;
  }

  #line(line: string, out: SseMessage[]): void {
    if (line === '') {
      if (this.#data.length > 0) out.push({ id: this.#id, event: this.#event || 'message', data: this.#data.join('\n') });
      this.#id = undefined;
      this.#event = '';
      this.#data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
    else if (field === 'id' && !value.includes('\0')) this.#id = value;
  }
}
