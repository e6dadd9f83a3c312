import { api, ApiError, type JobRecord } from './api.ts';
import type { JobStatus } from '../jobs/types.ts';
import { duration, h, isFinal, message, statusBadge, when } from './dom.ts';
import { OutputView } from './output.ts';
import { SseParser, type SseMessage } from '../cli/client/sse.ts';

/** The first wait before resuming a dropped stream (doubled on each failure in a row, up to 30 s). */
const RETRY_MS = 500;

/**
 * /ui/jobs/<id>: the record, its parameters (secrets arrive masked), the output tailing live
 * from /jobs/<id>/events, and a cancel button.
 */
export async function renderJob(main: HTMLElement, id: string): Promise<void> {
  let record: JobRecord;
  try {
    record = await api<JobRecord>(`/jobs/${encodeURIComponent(id)}`);
  } catch (err) {
    main.replaceChildren(
      h('h1', {}, 'Job ', h('code', {}, id)),
      message(err instanceof ApiError && err.status === 404 ? `No job ${id} (it may have been removed by retention).` : (err as Error).message),
    );
    return;
  }
  document.title = `${record.hook} ${record.id} · armhook`;

  const summary = h('dl', { class: 'record' });
  const params = h('div', { class: 'params' });
  const connection = h('span', { class: 'connection muted', attrs: { role: 'status' } });
  const notice = h('div', { class: 'notice' });
  const followButton = h('button', { class: 'follow', attrs: { type: 'button', hidden: '' }, on: { click: () => view.follow() } }, '↓ Follow the end');
  const view = new OutputView((following) => followButton.toggleAttribute('hidden', following));
  const cancel = cancelButton(id, {
    cancelled: (final) => show(final),
    failed: (err) => {
      notice.replaceChildren(message(err.message));
      cancel.disabled = isFinal(record.status);
    },
  });

  const show = (next: JobRecord): void => {
    record = next;
    summary.replaceChildren(...describe(record));
    params.replaceChildren(...paramTable(record.params));
    cancel.disabled = isFinal(record.status);
    cancel.hidden = isFinal(record.status);
    main.dataset.status = record.status;
  };

  main.replaceChildren(
    h(
      'div',
      { class: 'title' },
      h('h1', {}, h('a', { attrs: { href: `/ui/run/${record.hook}` } }, record.hook), ' ', h('code', { class: 'job-id' }, record.id)),
      cancel,
    ),
    summary,
    params,
    notice,
    h(
      'div',
      { class: 'output-bar' },
      h('h2', {}, 'Output'),
      connection,
      followButton,
      h('a', { attrs: { href: `/jobs/${encodeURIComponent(id)}/log`, target: '_blank' } }, 'plain text'),
    ),
    view.element,
  );
  show(record);
  tail(id, view, {
    status: (status) => show({ ...record, status }),
    done: (final) => show(final),
    connection: (text) => (connection.textContent = text),
    ended: async () => show(await api<JobRecord>(`/jobs/${encodeURIComponent(id)}`)),
  });
}

/** The cancel button: two clicks (a stray one must not stop a deployment), then DELETE /jobs/<id>. */
function cancelButton(id: string, on: { cancelled(record: JobRecord): void; failed(err: Error): void }): HTMLButtonElement {
  const cancel = h('button', { class: 'cancel danger', attrs: { type: 'button' } }, 'Cancel job');
  let armed: number | undefined;
  cancel.addEventListener('click', async () => {
    if (armed === undefined) {
      cancel.textContent = 'Really cancel?';
      armed = window.setTimeout(() => {
        armed = undefined;
        cancel.textContent = 'Cancel job';
      }, 5000);
      return;
    }
    window.clearTimeout(armed);
    armed = undefined;
    cancel.disabled = true;
    cancel.textContent = 'Cancelling…';
    try {
      on.cancelled(await api<JobRecord>(`/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' }));
    } catch (err) {
      cancel.textContent = 'Cancel job';
      on.failed(err as Error);
    }
  });
  return cancel;
}

interface TailHandlers {
  status(status: JobStatus): void;
  done(record: JobRecord): void;
  connection(text: string): void;
  /** The stream ended without a done event we saw (204: nothing after our last id). */
  ended(): Promise<void>;
}

/**
 * Follows GET /jobs/<id>/events — the stream EventSource reads — with fetch and one parser per
 * network chunk: Chromium's EventSource dispatches a DOM event per line, and a 100,000-line job
 * kept the page from answering for seconds. After a dropped connection it resumes with
 * Last-Event-ID set to the last event shown; events at or before it are never shown twice.
 */
function tail(id: string, view: OutputView, on: TailHandlers): void {
  let lastId = 0;
  const deliver = (message: SseMessage): boolean => {
    const n = Number(message.id);
    if (n > 0 && n <= lastId) return false;
    if (n > 0) lastId = n;
    switch (message.event) {
      case 'message':
        view.append(message.data, 'stdout');
        break;
      case 'stderr':
        view.append(message.data, 'stderr');
        break;
      case 'job':
        on.status((JSON.parse(message.data) as { status: JobStatus }).status);
        break;
      case 'queued':
        on.status('queued');
        view.append(`armhook: queued, position ${(JSON.parse(message.data) as { position: number }).position}`, 'note');
        break;
      case 'progress':
        view.append(`armhook: ${message.data}`, 'note');
        break;
      case 'done':
        on.done(JSON.parse(message.data) as JobRecord);
        return true;
    }
    return false;
  };

  const follow = async (): Promise<void> => {
    for (let failures = 0; ;) {
      const before = lastId;
      try {
        const response = await fetch(`/jobs/${encodeURIComponent(id)}/events`, {
          headers: { Accept: 'text/event-stream', ...(lastId > 0 ? { 'Last-Event-ID': String(lastId) } : {}) },
          cache: 'no-store',
        });
        if (response.status === 204) {
          on.connection('');
          await on.ended();
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        on.connection('live');
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const message of parser.push(value)) {
            if (deliver(message)) {
              await reader.cancel();
              on.connection('');
              return;
            }
          }
        }
      } catch {
        // dropped: resume below
      }
      failures = lastId > before ? 1 : failures + 1;
      on.connection('reconnecting…');
      await new Promise((resolve) => window.setTimeout(resolve, Math.min(RETRY_MS * 2 ** (failures - 1), 30_000)));
    }
  };
  void follow();
}

function describe(record: JobRecord): Node[] {
  const rows: Array<[string, Node | string]> = [
    ['Status', statusBadge(record.status)],
    ['Exit code', record.exitCode === null ? '—' : String(record.exitCode)],
    ['Caller', record.caller],
    ['Created', when(record.createdAt)],
    ['Started', when(record.startedAt)],
    ['Ended', when(record.endedAt)],
    ['Duration', duration(record.durationMs)],
  ];
  if (record.error) rows.push(['Error', `${record.error.code}: ${record.error.message}`]);
  if (record.result !== null && record.result !== undefined) rows.push(['Result', h('pre', {}, JSON.stringify(record.result, null, 2))]);
  return rows.flatMap(([term, value]) => [h('dt', {}, term), h('dd', { attrs: { 'data-field': term.toLowerCase().replace(/ /g, '-') } }, value)]);
}

function paramTable(params: Record<string, string>): Node[] {
  const entries = Object.entries(params);
  if (entries.length === 0) return [h('p', { class: 'muted' }, 'No parameters.')];
  return [
    h('h2', {}, 'Parameters'),
    h(
      'table',
      { class: 'params-table' },
      h('tbody', {}, ...entries.map(([name, value]) => h('tr', {}, h('th', { attrs: { scope: 'row' } }, name), h('td', {}, h('code', {}, value))))),
    ),
  ];
}
