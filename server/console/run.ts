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
    main.replaceChildren(
      h('h1', {}, 'Run ', h('code', {}, path)),
      message(`No hook /${path} that you may run.`),
      h('p', {}, h('a', { attrs: { href: '/ui/' } }, 'All jobs and hooks')),
    );
    return;
  }
  document.title = `Run ${hook.path} · armhook`;
  const problem = h('div');
  const submit = h('button', { class: 'primary', attrs: { type: 'submit' } }, 'Run');
  const fields = hook.params === null ? [freeForm()] : hook.params.map(field);
  const bodyField = hook.body === 'document' ? documentField() : undefined;
  const form = h(
    'form',
    { class: 'run', attrs: { method: 'post', action: `/ui/run${hook.path}`, autocomplete: 'off' } },
    ...fields,
    bodyField?.field,
    problem,
    submit,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    submit.disabled = true;
    problem.replaceChildren();
    try {
      const id = await start(hook, form, bodyField?.input.value);
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
  if (param.from?.startsWith('/')) {
    // The server reads it from a JSON body sent by a webhook sender, not from a form.
    return h(
      'div',
      { class: 'field' },
      h('span', { class: 'label' }, param.name),
      h('small', { class: 'muted' }, `taken from the request body at ${param.from}; not set from this form`),
    );
  }
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
    h(
      'label',
      { attrs: { for: input.id } },
      param.name,
      param.required ? h('span', { class: 'required', attrs: { title: 'required' } }, ' *') : null,
      param.secret ? h('span', { class: 'muted' }, ' (secret)') : null,
      param.from ? h('span', { class: 'muted' }, ` (sent as the ${param.from.slice('header:'.length)} header)`) : null,
    ),
    input,
    param.description || param.pattern
      ? h('small', { class: 'muted' }, [param.description, param.pattern ? `pattern: ${param.pattern}` : ''].filter(Boolean).join(' — '))
      : null,
  );
}

/** The JSON document a handler such as azure/deployments/create takes as its body. */
function documentField(): { field: HTMLElement; input: HTMLTextAreaElement } {
  // No name: it is the request body, not a parameter.
  const input = h('textarea', {
    attrs: { id: 'request-body', rows: '10', required: '', spellcheck: 'false', placeholder: '{ "template": { … }, "parameters": { … } }' },
  });
  input.addEventListener('input', () => {
    try {
      JSON.parse(input.value);
      input.setCustomValidity('');
    } catch (err) {
      input.setCustomValidity(`not JSON: ${(err as Error).message}`);
    }
  });
  return {
    input,
    field: h(
      'div',
      { class: 'field' },
      h('label', { attrs: { for: input.id } }, 'Body (JSON)'),
      input,
      h('small', { class: 'muted' }, 'Sent as the request body; the fields above go in the query.'),
    ),
  };
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
    for (const line of fieldText(data, 'params').split(/\r?\n/)) {
      if (line.trim() === '') continue;
      const eq = line.indexOf('=');
      if (eq <= 0) throw new Error(`"${line}" is not name=value`);
      params.append(line.slice(0, eq).trim(), line.slice(eq + 1));
    }
    return params;
  }
  for (const param of hook.params) {
    const value = fieldText(data, param.name);
    if (value !== '' && param.from === undefined) params.set(param.name, value);
  }
  return params;
}

async function start(hook: Hook, form: HTMLFormElement, document: string | undefined): Promise<string> {
  const params = formParams(hook, form);
  const headers: Record<string, string> = { Prefer: 'respond-async', Accept: 'application/json' };
  // A parameter declared `from=header:<name>` travels in that header.
  const data = new FormData(form);
  for (const param of hook.params ?? []) {
    const value = fieldText(data, param.name);
    if (param.from?.startsWith('header:') && value !== '') headers[param.from.slice('header:'.length)] = value;
  }
  // Parameters travel in the body, so secrets never sit in a URL; GET handlers and handlers
  // whose body is a document take them in the query.
  const init: RequestInit =
    hook.method === 'GET'
      ? { headers }
      : document !== undefined
        ? { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: document }
        : { method: 'POST', headers: { ...headers, 'Content-Type': 'application/x-www-form-urlencoded' }, body: params.toString() };
  const url = hook.method === 'GET' || document !== undefined ? `${hook.path}?${params.toString()}` : hook.path;
  return (await api<{ jobId: string }>(url, init)).jobId;
}

/** A text field of the form ('' when absent; the form has no file inputs). */
function fieldText(data: FormData, name: string): string {
  const value = data.get(name);
  return typeof value === 'string' ? value : '';
}
