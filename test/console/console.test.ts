// The web console in a real browser (Debian's chromium, driven by playwright-core; no browser is
// downloaded): live output, text never HTML, ANSI colours, stderr, the job list, the run form with
// a secret, cancel, resuming through a dropped connection, a 100,000-line job, no console errors.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, openSession, type BrowserSession } from '../helpers/browser.ts';
import { setPassword } from '../../server/auth/passwd.ts';
import { gateLine, release } from '../helpers/process.ts';
import { startCutProxy } from '../helpers/proxy.ts';
import { fetchText, parseSse, startServer, type TestServer } from '../helpers/server.ts';
import { startAsync } from '../jobs/helpers.ts';

// The functions passed to page.evaluate run in the page; the test program has Node's types only.
declare const document: any, window: any, getComputedStyle: any, requestAnimationFrame: any;
type HTMLInputElement = any;

const USER = 'ops';
const PASSWORD = 'console pw';
const AUTH = `${USER}:${PASSWORD}`;
const SECRET = 'hunter2-Sup3rSecret';

let server: TestServer;
let browser: Browser;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'armhook-console-'));
  await setPassword(join(dir, 'htpasswd'), USER, PASSWORD, { cost: 4 });
  server = await startServer({
    config: { htpasswd: join(dir, 'htpasswd') },
    scripts: {
      'live.sh': `#!/bin/sh\necho "first line"\n${gateLine('live-$name')}\necho "second line"\n`,
      'xss.sh': "#!/bin/sh\necho '<img src=x onerror=\"window.__pwned=1\">'\necho '<script>window.__pwned=2</script>'\n",
      'colors.sh':
        "#!/bin/sh\nprintf '\\033[31mred\\033[0m plain \\033[1;32mbold green\\033[0m\\n'\nprintf '\\033[38;5;208morange\\033[0m\\n'\necho 'warning: on stderr' >&2\n",
      'vm/create.sh': `#!/bin/sh
# @description Create a resource group and a VM
# @param rg required pattern=[a-z][a-z0-9-]* resource group
# @param vmname required pattern=[a-z][a-z0-9-]{0,62} VM name
# @param pw required secret admin password
# @param size default=Standard_B1s VM size
printf '\\033[1mAuthenticating...\\033[0m\\n'
echo '{ "environmentName": "AzureCloud", "user": { "assignedIdentityInfo": "MSI", "type": "servicePrincipal" } }'
printf '\\033[36mCreating the resource group\\033[0m %s\\n' "$rg"
printf '\\033[36mCreating the vm\\033[0m %s (%s), admin password %s\\n' "$vmname" "$size" "$pw"
echo "WARNING: the image win2016datacenter is deprecated" >&2
printf '\\033[32mdone\\033[0m\\n'
`,
      'hdr.sh': '#!/bin/sh\n# @param kind required from=header:X-Event-Kind event kind\n# @param ref from=/ref the ref pushed\necho "kind=$kind"\n',
      'sleepy.sh': '#!/bin/sh\necho started\nexec sleep 60\n',
      'halves.sh': `#!/bin/sh\nseq 1 500 | sed "s/^/n/"\n${gateLine('halves-$name')}\nseq 501 1000 | sed "s/^/n/"\n`,
      'big.sh': '#!/bin/sh\nseq 1 100000 | sed "s/^/line /"\n',
    },
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const authorization = { Authorization: `Basic ${Buffer.from(AUTH).toString('base64')}` };

/** Starts a job (202) as the console's user; returns its id. */
function start(path: string): Promise<string> {
  return startAsync(server, path, authorization);
}

/** The job's final record: its event stream ends with `done`. */
async function waitDone(id: string): Promise<{ status: string }> {
  const res = await fetchText(server, `/jobs/${id}/events`, { auth: AUTH });
  return JSON.parse(parseSse(res.body).events.at(-1)?.data ?? '{}') as { status: string };
}

function session(origin = server.url, credentials = { username: USER, password: PASSWORD }): Promise<BrowserSession> {
  return openSession(browser, { baseURL: origin, httpCredentials: credentials, viewport: { width: 1280, height: 860 } });
}

/** The visible output rows as [line number, text, kind]. */
function rows(page: Page): Promise<Array<[number, string, string]>> {
  return page.$$eval('.output .line', (lines) =>
    lines.map(
      (line) =>
        [
          Number(line.querySelector('.ln')?.textContent),
          line.querySelector('.text')?.textContent ?? '',
          line.classList.contains('stderr') ? 'stderr' : line.classList.contains('note') ? 'note' : 'stdout',
        ] as [number, string, string],
    ),
  );
}

/** Every output line, read by scrolling the virtualised view from top to bottom. */
async function allLines(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    const output = document.querySelector('.output');
    const frame = (): Promise<void> => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve())));
    const seen = new Map<number, string>();
    for (let top = 0; ; top += output.clientHeight) {
      output.scrollTop = top;
      await frame();
      for (const line of output.querySelectorAll('.line'))
        seen.set(Number(line.querySelector('.ln')?.textContent), line.querySelector('.text')?.textContent ?? '');
      if (top + output.clientHeight >= output.scrollHeight) break;
    }
    return [...seen.entries()].sort((a, b) => a[0] - b[0]).map(([, text]) => text);
  });
}

async function lastRow(page: Page, text: string): Promise<void> {
  await page.waitForFunction((want) => {
    const lines = document.querySelectorAll('.output .line .text');
    return lines[lines.length - 1]?.textContent === want;
  }, text);
}

async function statusIs(page: Page, status: string): Promise<void> {
  await page.waitForSelector(`.record [data-field="status"] .status[data-status="${status}"]`);
}

test('the console needs the same authentication and is served with a strict Content-Security-Policy', async () => {
  assert.equal((await fetchText(server, '/ui/')).status, 401);
  for (const path of ['/ui/', '/ui/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV', '/ui/run/vm/create', '/ui/assets/console.js', '/ui/assets/console.css']) {
    const res = await fetchText(server, path, { auth: AUTH });
    assert.equal(res.status, 200, path);
    assert.match(String(res.headers['content-security-policy']), /^default-src 'self'; script-src 'self'; style-src 'self';/, path);
    assert.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
  }
  const page = await fetchText(server, '/ui/', { auth: AUTH });
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.doesNotMatch(page.body, /<script>|<script [^>]*>[^<]/, 'no inline script');
  assert.doesNotMatch(page.body, /https?:\/\//, 'nothing from another host');
  assert.match(String((await fetchText(server, '/ui/assets/console.js', { auth: AUTH })).headers['content-type']), /^text\/javascript/);
  assert.equal((await fetchText(server, '/ui/assets/nothing.js', { auth: AUTH })).status, 404);
});

test("a running job's lines appear live; the job page shows its status word and the list links it by id", async () => {
  const s = await session();
  try {
    const id = await start('/live?name=l1');
    await s.page.goto(`/ui/jobs/${id}`);
    await lastRow(s.page, 'first line');
    await statusIs(s.page, 'running');
    await release(server.markerDir, 'live-l1');
    await lastRow(s.page, 'second line');
    await statusIs(s.page, 'succeeded');
    assert.deepEqual(await rows(s.page), [
      [1, 'first line', 'stdout'],
      [2, 'second line', 'stdout'],
    ]);
    assert.equal(await s.page.isHidden('button.cancel'), true, 'no cancel button for an ended job');
    assert.deepEqual(s.problems, []);
  } finally {
    await s.close();
  }
});

test('the list shows a new job with its status word, live, linked by its id; filters narrow it', async () => {
  const s = await session();
  try {
    await s.page.goto('/ui/');
    await s.page.waitForSelector('table.jobs tbody tr');
    const id = await start('/live?name=list');
    const row = `tr[data-job="${id}"]`;
    await s.page.waitForSelector(`${row} .status[data-status="running"]`);
    assert.equal(await s.page.textContent(`${row} a.job-id`), id);
    assert.equal(await s.page.getAttribute(`${row} a.job-id`, 'href'), `/ui/jobs/${id}`);
    await release(server.markerDir, 'live-list');
    await s.page.waitForSelector(`${row} .status[data-status="succeeded"]`);
    assert.ok(await s.page.$('.hooks a[href="/ui/run/vm/create"]'), 'the hooks panel links each run form');
    await s.page.selectOption('select[name="status"]', 'failed');
    await s.page.click('.filters button[type="submit"]');
    await s.page.waitForURL(/status=failed/);
    await s.page.waitForSelector('table.jobs tbody tr');
    assert.equal(await s.page.$(row), null, 'a succeeded job is not in the failed filter');
    assert.deepEqual(s.problems, []);
  } finally {
    await s.close();
  }
});

test('output is text, never HTML: <img onerror> and <script> printed by a script stay text', async () => {
  const s = await session();
  try {
    const id = await start('/xss');
    await waitDone(id);
    await s.page.goto(`/ui/jobs/${id}`);
    await lastRow(s.page, '<script>window.__pwned=2</script>');
    assert.deepEqual(
      (await rows(s.page)).map((r) => r[1]),
      ['<img src=x onerror="window.__pwned=1">', '<script>window.__pwned=2</script>'],
    );
    assert.equal(await s.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
    assert.equal(await s.page.$$eval('.output img, .output script', (found) => found.length), 0);
    assert.deepEqual(s.problems, []);
  } finally {
    await s.close();
  }
});

test('ANSI colours are rendered (16, 256 colours, bold) and stderr lines are marked', async () => {
  const s = await session();
  try {
    const id = await start('/colors');
    await waitDone(id);
    await s.page.goto(`/ui/jobs/${id}`);
    await s.page.waitForSelector('.output .line.stderr');
    const lines = await rows(s.page);
    assert.deepEqual(
      lines.map((r) => r[1]),
      ['red plain bold green', 'orange', 'warning: on stderr'],
      'escape sequences are not shown',
    );
    assert.equal(lines[2]?.[2], 'stderr');
    assert.equal(await s.page.textContent('.output .fg1'), 'red');
    assert.equal(await s.page.textContent('.output .fg2.sgr-bold'), 'bold green');
    assert.equal(await s.page.$eval('.output .fg1', (el) => getComputedStyle(el).color), 'rgb(224, 108, 117)');
    const orange = await s.page.$$eval('.output .line .text span', (spans) =>
      spans.filter((el) => el.textContent === 'orange').map((el) => getComputedStyle(el).color),
    );
    assert.deepEqual(orange, ['rgb(255, 135, 0)']);
    assert.deepEqual(s.problems, []);
  } finally {
    await s.close();
  }
});

test('the run form has one field per parameter (secret as a password field), starts the job and opens its page; the secret is masked', async () => {
  const s = await session();
  try {
    await s.page.goto('/ui/run/vm/create');
    await s.page.waitForSelector('form.run input[name="size"]');
    assert.deepEqual(
      await s.page.$$eval('form.run input', (inputs) =>
        inputs.map((i) => [(i as HTMLInputElement).name, (i as HTMLInputElement).type, (i as HTMLInputElement).required, (i as HTMLInputElement).value]),
      ),
      [
        ['rg', 'text', true, ''],
        ['vmname', 'text', true, ''],
        ['pw', 'password', true, ''],
        ['size', 'text', false, 'Standard_B1s'],
      ],
    );
    const before = (await fetchText(server, '/jobs?hook=vm/create', { auth: AUTH })).json().items.length;
    await s.page.fill('input[name="rg"]', 'Bad Name');
    await s.page.fill('input[name="vmname"]', 'myvm');
    await s.page.fill('input[name="pw"]', SECRET);
    await s.page.click('form.run button[type="submit"]');
    assert.equal(await s.page.$eval('input[name="rg"]', (el) => (el as HTMLInputElement).validity.valid), false, 'the pattern is checked before sending');
    assert.equal((await fetchText(server, '/jobs?hook=vm/create', { auth: AUTH })).json().items.length, before, 'nothing started');
    await s.page.fill('input[name="rg"]', 'myrg');
    await s.page.click('form.run button[type="submit"]');
    await s.page.waitForURL(/\/ui\/jobs\/[0-9A-Z]{26}$/);
    await statusIs(s.page, 'succeeded');
    assert.ok(
      (await rows(s.page)).some((r) => r[1] === 'done'),
      'every line arrived before done',
    );
    const id = s.page.url().split('/').pop() ?? '';
    const record = (await fetchText(server, `/jobs/${id}`, { auth: AUTH })).json();
    assert.deepEqual(record.params, { rg: 'myrg', vmname: 'myvm', pw: '***', size: 'Standard_B1s' });
    assert.equal(await s.page.textContent('.params-table'), 'rgmyrgvmnamemyvmpw***sizeStandard_B1s');
    const text = await s.page.evaluate(() => document.body.innerText);
    assert.ok(!text.includes(SECRET), 'the secret is nowhere on the page');
    assert.match(text, /admin password \*\*\*/);
    assert.deepEqual(s.problems, []);

    // The README's screenshot: this page, taken by the test run.
    const shot = join(dir, 'console.png');
    await s.page.evaluate(() => document.activeElement?.blur());
    await s.page.screenshot({ path: shot });
    assert.ok((await stat(shot)).size > 10_000, 'a real screenshot');
    if (process.env.ARMHOOK_UPDATE_SCREENSHOT) {
      await mkdir(join(import.meta.dirname, '..', '..', 'docs'), { recursive: true });
      await copyFile(shot, join(import.meta.dirname, '..', '..', 'docs', 'console.png'));
    }
  } finally {
    await s.close();
  }
});

test('a parameter declared from a header is sent as that header; one from the body is shown, not asked for', async () => {
  const s = await session();
  try {
    await s.page.goto('/ui/run/hdr');
    await s.page.waitForSelector('form.run input[name="kind"]');
    assert.deepEqual(await s.page.$$eval('form.run input', (inputs) => inputs.map((i) => (i as HTMLInputElement).name)), ['kind']);
    assert.match((await s.page.textContent('form.run')) ?? '', /taken from the request body at \/ref/);
    await s.page.fill('input[name="kind"]', 'push');
    await s.page.click('form.run button[type="submit"]');
    await s.page.waitForURL(/\/ui\/jobs\/[0-9A-Z]{26}$/);
    // The job may have ended before its page loaded: the status then comes with the record, ahead of the streamed lines.
    await lastRow(s.page, 'kind=push');
    await statusIs(s.page, 'succeeded');
    assert.deepEqual(
      (await rows(s.page)).map((r) => r[1]),
      ['kind=push'],
    );
    assert.deepEqual(s.problems, []);
  } finally {
    await s.close();
  }
});

test('the cancel button (two clicks) cancels a running job', async () => {
  const s = await session();
  try {
    const id = await start('/sleepy');
    await s.page.goto(`/ui/jobs/${id}`);
    await lastRow(s.page, 'started');
    await s.page.click('button.cancel');
    assert.equal(await s.page.textContent('button.cancel'), 'Really cancel?');
    assert.equal((await fetchText(server, `/jobs/${id}`, { auth: AUTH })).json().status, 'running', 'one click cancels nothing');
    await s.page.click('button.cancel');
    await statusIs(s.page, 'cancelled');
    assert.equal((await waitDone(id)).status, 'cancelled');
    assert.deepEqual(s.problems, []);
  } finally {
    await s.close();
  }
});

test('a connection dropped mid-job resumes: every line once, in order', async () => {
  const proxy = await startCutProxy(server.port);
  const s = await session(`https://localhost:${proxy.port}`);
  try {
    const id = await start('/halves?name=b1');
    await s.page.goto(`/ui/jobs/${id}`);
    await lastRow(s.page, 'n500');
    const connectionsBefore = proxy.connections;
    proxy.cut();
    await s.page.waitForFunction(() => document.querySelector('.connection')?.textContent === 'reconnecting…');
    await release(server.markerDir, 'halves-b1');
    await lastRow(s.page, 'n1000');
    await statusIs(s.page, 'succeeded');
    assert.ok(proxy.connections > connectionsBefore, 'the page reconnected');
    assert.deepEqual(
      await allLines(s.page),
      Array.from({ length: 1000 }, (_, i) => `n${i + 1}`),
    );
    assert.deepEqual(
      s.problems.filter((p) => !/net::ERR_|Failed to load resource/.test(p)),
      [],
      'nothing but the cut connection itself',
    );
  } finally {
    await s.close();
    await proxy.close();
  }
});

test('a 100,000-line job reaches its end while the page answers script calls within 500 ms, with a few dozen rows in the DOM', async () => {
  const s = await session();
  try {
    const id = await start('/big');
    await s.page.goto(`/ui/jobs/${id}`);
    let slowest = 0;
    let calls = 0;
    for (;;) {
      const started = performance.now();
      const state = await s.page.evaluate(() => ({
        status: document.querySelector('main')?.dataset.status,
        rows: document.querySelectorAll('.output .line').length,
        last: document.querySelector('.output .line:last-child .text')?.textContent,
      }));
      slowest = Math.max(slowest, performance.now() - started);
      calls++;
      assert.ok(state.rows < 200, `${state.rows} rows in the DOM`);
      if (state.status === 'succeeded' && state.last === 'line 100000') break;
    }
    assert.ok(slowest < 500, `slowest script call ${slowest.toFixed(0)} ms over ${calls} calls`);
    assert.equal(await s.page.$eval('.output .line:last-child .ln', (el) => el.textContent), '100000');
    // Scrolled up, the view stays where the reader put it.
    await s.page.$eval('.output', (el) => (el.scrollTop = 0));
    await s.page.waitForSelector('button.follow:not([hidden])');
    assert.equal((await rows(s.page))[0]?.[1], 'line 1');
    assert.deepEqual(s.problems, []);
  } finally {
    await s.close();
  }
});

test("the access file's rules apply to the console as to any caller: only the hooks it may run, only its own jobs", async () => {
  const root = await mkdtemp(join(tmpdir(), 'armhook-console-access-'));
  const htpasswd = join(root, 'htpasswd');
  await setPassword(htpasswd, 'ops', 'ops pw', { cost: 4 });
  await setPassword(htpasswd, 'api', 'api pw', { cost: 4 });
  const access = join(root, 'access.json');
  await writeFile(
    access,
    JSON.stringify({
      rules: [
        { callers: ['api'], run: ['demo/*'], jobs: 'own' },
        { callers: ['ops'], run: ['**'], jobs: 'all' },
      ],
    }),
  );
  const guarded = await startServer({
    config: { htpasswd, access },
    scripts: { 'demo/hello.sh': '#!/bin/sh\necho hello\n', 'ops/deploy.sh': '#!/bin/sh\necho deployed\n' },
  });
  const s = await session(guarded.url, { username: 'api', password: 'api pw' });
  try {
    const asOps = await startAsync(guarded, '/ops/deploy', { Authorization: `Basic ${Buffer.from('ops:ops pw').toString('base64')}` });
    const asApi = await startAsync(guarded, '/demo/hello', { Authorization: `Basic ${Buffer.from('api:api pw').toString('base64')}` });
    await s.page.goto('/ui/');
    await s.page.waitForSelector(`tr[data-job="${asApi}"]`);
    assert.deepEqual(await s.page.$$eval('.hooks a', (links) => links.map((a) => a.getAttribute('href'))), ['/ui/run/demo/hello']);
    assert.deepEqual(
      await s.page.$$eval('table.jobs tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-job'))),
      [asApi],
      "another caller's job is not listed",
    );
    await s.page.goto(`/ui/jobs/${asOps}`);
    await s.page.waitForSelector('main [role="alert"]');
    assert.match((await s.page.textContent('main')) ?? '', new RegExp(`No job ${asOps}`));
    await s.page.goto('/ui/run/ops/deploy');
    await s.page.waitForSelector('main [role="alert"]');
    assert.match((await s.page.textContent('main')) ?? '', /No hook \/ops\/deploy that you may run/);
    assert.deepEqual(
      s.problems.filter((p) => !/status of 404/.test(p)),
      [],
      'nothing but the 404 of the job it may not see',
    );
  } finally {
    await s.close();
    await guarded.close();
    await rm(root, { recursive: true, force: true });
  }
});
