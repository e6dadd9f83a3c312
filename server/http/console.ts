import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';

/**
 * The web console: static files built into dist/ui/ (see server/console/), served under /ui/
 * behind the same authentication as every other route. Its pages call /jobs, /hooks and
 * /jobs/<id>/events like any other client, so whatever rules apply to a caller apply to it.
 */

/**
 * Nothing but the console's own files: no inline script or style attribute in markup, no other
 * host, not framed (clickjacking a cancel button), no <base> or plugin tricks.
 */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** Where the built console is: next to the bundle (dist/ui), or dist/ui from the source tree. */
function consoleDir(): string | undefined {
  const candidates = [join(import.meta.dirname, 'ui'), join(import.meta.dirname, '..', '..', 'dist', 'ui')];
  return candidates.find((dir) => existsSync(join(dir, 'index.html')));
}

function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of ['index.html', 'console.js', 'console.css', 'console.js.map']) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    const body = readFileSync(file);
    const ext = name.slice(name.lastIndexOf('.'));
    assets.set(name, { body, type: TYPES[ext] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return assets;
}

export function registerConsoleRoutes(app: FastifyInstance): void {
  const dir = consoleDir();
  const assets = dir ? loadAssets(dir) : new Map<string, Asset>();

  const send = async (request: FastifyRequest, reply: FastifyReply, name: string): Promise<void> => {
    const asset = assets.get(name);
    if (!asset) {
      if (name === 'index.html')
        throw new AppError(503, 'console_not_built', 'the web console is not built: run `npm run build` (npm ci does it) and restart armhook');
      throw new AppError(404, 'not_found', `no console file ${name}`);
    }
    void reply
      .header('Content-Security-Policy', CONSOLE_CSP)
      .header('X-Content-Type-Options', 'nosniff')
      .header('Referrer-Policy', 'same-origin')
      .header('X-Frame-Options', 'DENY')
      // Pages and assets carry the user's view of jobs: revalidate every time (cheap with ETag).
      .header('Cache-Control', 'no-cache, private')
      .header('ETag', asset.etag)
      .type(asset.type);
    if (request.headers['if-none-match'] === asset.etag) {
      await reply.code(304).send();
      return;
    }
    await reply.send(asset.body);
  };

  // One page serves every console path; the script reads location.pathname.
  const page = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => send(request, reply, 'index.html');
  app.get('/ui', async (_request, reply) => reply.redirect('/ui/', 308));
  app.get('/ui/', page);
  app.get('/ui/jobs/:id', page);
  app.get('/ui/run/*', page);
  app.get<{ Params: { name: string } }>('/ui/assets/:name', async (request, reply) => send(request, reply, request.params.name));
}
