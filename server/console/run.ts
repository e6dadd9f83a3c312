import { api, ApiError, hooks, type Hook, type HookParam } from './api.ts';
import { h, message } from './dom.ts';

/**
 * /ui/run/<hook path>: a form built from the hook's declared parameters — one field per
 * parameter, named after it; required, pattern and default as declared; secrets as password
 * fields — that starts the job with `Prefer: respond-async` and opens its page.
 */
export async function renderRun(main: HTMLElement, path: string): Promise<void> {
  const hook = (await hooks()).find((candidate) => candidate.path === `/${path}`);
  if (!hook) {
    main.replaceChildren(h('h1', {}, 'Run ', h('code', {}, path)), message(`No hook /${path} that you may run.`), h('p', {}, h('a', { attrs: { href: '/ui/' } }, 'All jobs and hooks')));
    return;
  }
  document.title = `Run ${hook.path} · armhook`;
  const problem = h('div');
  const submit = h('button', { class: 'primary', attrs: { type: 'submit' } }, 'Run');
  const fields = hook.params === null ? [freeForm()] : hook.params.map(field);
  const form = h('form', { class: 'run', attrs: { method: 'post', action: `/ui/run${hook.path}`, autocomplete: 'off' } }, ...fields, problem, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    submit.disabled = true;
    problem.replaceChildren();
    try {
      const id = await start(hook, form);
      location.assign(`/ui/jobs/${encodeURIComponent(id)}`);
    } catch (err) {
      problem.replaceChildren(message(err instanceof ApiError ? `${err.message} (${err.code})` : (err as Error).message));
      submit.disabled = false;
    }
  });
  main.replaceChildren(
    h('h1', {}, 'Run ', h('code', {}, hook.path)),
    hook.description ? h('p', {}, hook.description) : '',
    h('p', { class: 'muted' }, `${hook.kind === 'script' ? 'Script' : 'Typed Azure handler'}, ${hook.method}. The job starts at once and its page opens.`),
    form,
  );
}

function field(param: HookParam): HTMLElement {
  const input = h('input', {
    attrs: {
      id: `param-${param.name}`,
      name: param.name,
      type: param.secret ? 'password' : 'text',
      autocomplete: param.secret ? 'new-password' : 'off',
      spellcheck: 'false',
      ...(param.required ? { required: '' } : {}),
      ...(param.default !== undefined ? { value: param.default } : {}),
      ...(param.pattern ? { 'data-pattern': param.pattern } : {}),
    },
  });
  // The server's rule, checked here too: the whole value must match (an HTML pattern attribute
  // would compile it with other flags, and refuse some patterns the server accepts).
  if (param.pattern) {
    let rule: RegExp | undefined;
    try {
      rule = new RegExp(`^(?:${param.pattern})$`);
    } catch {
      rule = undefined;
    }
    const check = (): void => input.setCustomValidity(rule && input.value !== '' && !rule.test(input.value) ? `must match ${param.pattern}` : '');
    input.addEventListener('input', check);
    check();
  }
  return h(
    'div',
    { class: 'field' },
    h('label', { attrs: { for: input.id } }, param.name, param.required ? h('span', { class: 'required', attrs: { title: 'required' } }, ' *') : null, param.secret ? h('span', { class: 'muted' }, ' (secret)') : null),
    input,
    param.description || param.pattern ? h('small', { class: 'muted' }, [param.description, param.pattern ? `pattern: ${param.pattern}` : ''].filter(Boolean).join(' — ')) : null,
  );
}

/** An undeclared script takes any valid names: one name=value per line. */
function freeForm(): HTMLElement {
  return h(
    'div',
    { class: 'field' },
    h('label', { attrs: { for: 'free-params' } }, 'Parameters'),
    h('textarea', { attrs: { id: 'free-params', name: 'params', rows: '5', placeholder: 'name=value, one per line', spellcheck: 'false' } }),
    h('small', { class: 'muted' }, 'This script declares no parameters: any name matching ^[a-z][a-z0-9_]*$ is passed to it.'),
  );
}

function formParams(hook: Hook, form: HTMLFormElement): URLSearchParams {
  const data = new FormData(form);
  const params = new URLSearchParams();
  if (hook.params === null) {
    for (const line of String(data.get('params') ?? '').split(/\r?\n/)) {
      if (line.trim() === '') continue;
      const eq = line.indexOf('=');
      if (eq <= 0) throw new Error(`"${line}" is not name=value`);
      params.append(line.slice(0, eq).trim(), line.slice(eq + 1));
    }
    return params;
  }
  for (const param of hook.params) {
    const value = String(data.get(param.name) ?? '');
    if (value !== '') params.set(param.name, value);
  }
  return params;
}

async function start(hook: Hook, form: HTMLFormElement): Promise<string> {
  const params = formParams(hook, form);
  const headers = { Prefer: 'respond-async', Accept: 'application/json' };
  // Parameters travel in the body, so secrets never sit in a URL; GET handlers take a query.
  const accepted =
    hook.method === 'GET'
      ? await api<{ jobId: string }>(`${hook.path}?${params.toString()}`, { headers })
      : await api<{ jobId: string }>(hook.path, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/x-www-form-urlencoded' }, body: params.toString() });
  return accepted.jobId;
}
