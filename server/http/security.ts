import type { IncomingHttpHeaders } from 'node:http';

/**
 * Why a request looks cross-site, or undefined. Browsers resend basic-auth credentials to a site
 * on their own, so a page elsewhere could make a logged-in browser start a deployment; browsers
 * mark such requests with Sec-Fetch-Site and Origin, and non-browser clients send neither.
 */
export function crossSiteReason(headers: IncomingHttpHeaders): string | undefined {
  const site = headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site is "${site}"`;
  const origin = headers.origin;
  if (typeof origin !== 'string') return undefined;
  if (origin === 'null') return 'Origin is "null" (a sandboxed or opaque page)';
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return 'Origin is not a URL';
  }
  return host === headers.host ? undefined : `Origin ${origin} is not this server`;
}
