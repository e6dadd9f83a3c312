// Debian's chromium driven by playwright-core (never a browser download): one launch with the
// flags a closed, loopback-only machine needs, and sessions that collect what the page reports.
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Headless chromium; playwright gives every launch a fresh, temporary user-data-dir. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // No background connections: this machine reaches only loopback, and refused ones would be noise.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  /** Console errors and warnings, and page errors, seen so far. */
  problems: string[];
  close(): Promise<void>;
}

/** A new context (the test CA is not the browser's: certificate errors are ignored) and one page. */
export async function openSession(browser: Browser, options: BrowserContextOptions): Promise<BrowserSession> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, ...options });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  return { context, page, problems, close: () => context.close() };
}
