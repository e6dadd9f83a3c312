import { api, hooks, type Hook, type JobRecord } from './api.ts';
import { JOB_STATUSES } from '../jobs/types.ts';
import { duration, h, jobLink, message, statusBadge, when } from './dom.ts';

/** How often the list asks for fresh statuses while the tab is visible. */
const REFRESH_MS = 2000;

/**
 * /ui/: jobs newest first with their status kept live, filters (hook, status, caller) and
 * paging in the address (a plain GET form, so a filtered view is a link), and the hooks this
 * caller may run, each with a link to its form.
 */
export async function renderList(main: HTMLElement, query: URLSearchParams): Promise<void> {
  const filter = { hook: query.get('hook') ?? '', status: query.get('status') ?? '', caller: query.get('caller') ?? '' };
  const after = query.get('after') ?? '';
  const catalog = await hooks().catch(() => [] as Hook[]);

  const form = filterForm(filter, catalog);
  const body = h('tbody');
  const pager = h('nav', { class: 'pager' });
  const problem = h('div');
  const table = h(
    'table',
    { class: 'jobs' },
    h('thead', {}, h('tr', {}, ...['Job', 'Hook', 'Status', 'Caller', 'Created', 'Duration'].map((name) => h('th', { attrs: { scope: 'col' } }, name)))),
    body,
  );
  main.replaceChildren(
    h('div', { class: 'list-layout' }, h('section', { class: 'jobs-panel' }, h('h1', {}, 'Jobs'), form, problem, table, pager), hookPanel(catalog)),
  );

  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(filter)) if (value) params.set(name, value);
  if (after) params.set('after', after);

  const refresh = async (): Promise<void> => {
    try {
      const page = await api<{ items: JobRecord[]; next: string | null }>(`/jobs?${params.toString()}`);
      body.replaceChildren(
        ...(page.items.length === 0 ? [h('tr', {}, h('td', { class: 'muted', attrs: { colspan: '6' } }, 'No jobs.'))] : page.items.map(row)),
      );
      const nextAfter = page.next ? new URL(page.next, location.origin).searchParams.get('after') : null;
      const older = new URLSearchParams(params);
      if (nextAfter) older.set('after', nextAfter);
      const newest = new URLSearchParams(params);
      newest.delete('after');
      pager.replaceChildren(
        after ? h('a', { attrs: { href: `/ui/?${newest.toString()}` } }, '← Newest') : '',
        nextAfter ? h('a', { class: 'older', attrs: { href: `/ui/?${older.toString()}` } }, 'Older →') : '',
      );
      problem.replaceChildren();
    } catch (err) {
      problem.replaceChildren(message((err as Error).message));
    }
  };
  await refresh();
  let busy = false;
  window.setInterval(async () => {
    if (document.hidden || busy) return;
    busy = true;
    await refresh();
    busy = false;
  }, REFRESH_MS);
}

/** The filters as a plain GET form (a filtered view is a link), with the caller's hooks offered as paths. */
function filterForm(filter: { hook: string; status: string; caller: string }, catalog: Hook[]): HTMLFormElement {
  const hookList = h('datalist', { attrs: { id: 'hook-paths' } }, ...catalog.map((hook) => h('option', { attrs: { value: hook.path.slice(1) } })));
  return h(
    'form',
    { class: 'filters', attrs: { method: 'get', action: '/ui/', role: 'search' } },
    h('label', {}, 'Hook ', h('input', { attrs: { name: 'hook', value: filter.hook, list: 'hook-paths', placeholder: 'any', size: '18' } })),
    hookList,
    h(
      'label',
      {},
      'Status ',
      h(
        'select',
        { attrs: { name: 'status' } },
        h('option', { attrs: { value: '' } }, 'any'),
        ...JOB_STATUSES.map((s) => h('option', { attrs: { value: s, ...(s === filter.status ? { selected: '' } : {}) } }, s)),
      ),
    ),
    h('label', {}, 'Caller ', h('input', { attrs: { name: 'caller', value: filter.caller, placeholder: 'any', size: '12' } })),
    h('button', { attrs: { type: 'submit' } }, 'Filter'),
    filter.hook || filter.status || filter.caller ? h('a', { attrs: { href: '/ui/' } }, 'clear') : null,
  );
}

/** The hooks this caller may run, each linking to its form. */
function hookPanel(catalog: Hook[]): HTMLElement {
  return h(
    'section',
    { class: 'hooks' },
    h('h2', {}, 'Run a hook'),
    catalog.length === 0
      ? h('p', { class: 'muted' }, 'No hooks you may run.')
      : h(
          'ul',
          {},
          ...catalog.map((hook) =>
            h(
              'li',
              {},
              h('a', { attrs: { href: `/ui/run${hook.path}` } }, hook.path),
              hook.description ? h('span', { class: 'muted' }, ` ${hook.description}`) : null,
            ),
          ),
        ),
  );
}

function row(job: JobRecord): HTMLTableRowElement {
  return h(
    'tr',
    { attrs: { 'data-job': job.id } },
    h('td', {}, jobLink(job.id)),
    h('td', {}, job.hook),
    h('td', {}, statusBadge(job.status)),
    h('td', {}, job.caller),
    h('td', {}, when(job.createdAt)),
    h('td', {}, duration(job.durationMs)),
  );
}
