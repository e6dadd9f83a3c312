// The console's run form for typed Azure handlers, built from their schemas, against the IMDS and
// ARM fakes: a template deployment (parameters in the query, the JSON document as the body) and a
// read-only GET handler, each followed to its end on the job page.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium, openSession, type BrowserSession } from '../helpers/browser.ts';
import { startAzureServer, type AzureServerEnv } from '../azure/setup.ts';
import { fetchText } from '../helpers/server.ts';

// The functions passed to page.evaluate run in the page; the test program has Node's types only.
type HTMLInputElement = any;

let env: AzureServerEnv;
let browser: Browser;

before(async () => {
  env = await startAzureServer();
  env.arm.addGroup('app-rg');
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await env?.close();
});

function page(): Promise<BrowserSession> {
  return openSession(browser, { baseURL: env.server.url });
}

test('azure/deployments/create: fields from the schema, the template as the body, progress and the outputs on the job page', async () => {
  const s = await page();
  try {
    await s.page.goto('/ui/run/azure/deployments/create');
    await s.page.waitForSelector('form.run textarea#request-body');
    assert.deepEqual(await s.page.$$eval('form.run input', (inputs) => inputs.map((i) => [(i as HTMLInputElement).name, (i as HTMLInputElement).required])), [
      ['rg', true],
      ['name', true],
    ]);
    await s.page.fill('input[name="rg"]', 'app-rg');
    await s.page.fill('input[name="name"]', 'from-console');
    await s.page.fill('#request-body', '{ not json');
    await s.page.click('form.run button[type="submit"]');
    assert.equal(await s.page.$eval('#request-body', (el) => (el as HTMLInputElement).validity.valid), false, 'the body must be JSON');
    const template = {
      $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#',
      contentVersion: '1.0.0.0',
      parameters: { storageName: { type: 'string' } },
      resources: [{ type: 'Microsoft.Storage/storageAccounts', name: "[parameters('storageName')]" }],
      outputs: { storageName: { type: 'string', value: "[parameters('storageName')]" } },
    };
    await s.page.fill('#request-body', JSON.stringify({ template, parameters: { storageName: { value: 'consolestore' } } }));
    await s.page.click('form.run button[type="submit"]');
    await s.page.waitForURL(/\/ui\/jobs\/[0-9A-Z]{26}$/);
    await s.page.waitForSelector('.record [data-field="status"] .status[data-status="succeeded"]');
    const id = s.page.url().split('/').pop() ?? '';
    const record = (await fetchText(env.server, `/jobs/${id}`)).json();
    assert.deepEqual([record.kind, record.hook, record.params], ['handler', 'azure/deployments/create', { rg: 'app-rg', name: 'from-console' }]);
    assert.match((await s.page.textContent('.record [data-field="result"]')) ?? '', /consolestore/);
    const notes = await s.page.$$eval('.output .line.note .text', (lines) => lines.map((l) => l.textContent ?? ''));
    assert.ok(
      notes.some((n) => n.includes('consolestore') && n.includes('Succeeded')),
      `progress shown: ${notes.join('\n')}`,
    );
    assert.deepEqual(s.problems, []);
  } finally {
    await s.close();
  }
});

test('a read-only GET handler (azure/groups) runs from its form and shows its result', async () => {
  const s = await page();
  try {
    await s.page.goto('/ui/run/azure/groups');
    await s.page.waitForSelector('form.run button[type="submit"]');
    await s.page.click('form.run button[type="submit"]');
    await s.page.waitForURL(/\/ui\/jobs\/[0-9A-Z]{26}$/);
    await s.page.waitForSelector('.record [data-field="status"] .status[data-status="succeeded"]');
    assert.match((await s.page.textContent('.record [data-field="result"]')) ?? '', /app-rg/);
    assert.deepEqual(s.problems, []);
  } finally {
    await s.close();
  }
});
