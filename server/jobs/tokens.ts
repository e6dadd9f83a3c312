/**
 * Access tokens in output are masked like secret parameters, before anything is stored or
 * streamed: a script that runs `az account get-access-token`, or prints a token response, must
 * not leave a usable credential in the job's log, its replay or a caller's terminal.
 */

/**
 * A JWT: base64url parts joined by dots, the first a JSON object (base64url of `{"` is `eyJ`).
 * Three parts for a signed token, five for an encrypted one; the signature may be empty.
 */
const JWT = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)?/g;

/**
 * The value of a token field, whatever the token looks like (opaque refresh tokens too), in JSON
 * (`"accessToken": "…"`) or as Python prints a dict (`'access_token': '…'`, az --debug).
 */
const TOKEN_FIELD = /(["'])(access_?token|accessToken|refresh_?token|refreshToken)\1(\s*:\s*)(["'])(?:\\.|(?!\4)[^\\])*\4/g;

/** The text with every access token replaced by ***. */
export function maskTokens(text: string): string {
  // Two substring scans rule out almost every line before a regular expression runs.
  if (!text.includes('eyJ') && !text.includes('oken')) return text;
  return text.replace(TOKEN_FIELD, '$1$2$1$3$4***$4').replace(JWT, '***');
}
