import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, quote } from '../errors.ts';

/** The path of a request URL, without its query string: the only part of a URL armhook logs. */
export function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  return q < 0 ? raw : raw.slice(0, q);
}

/** The query string of a request URL, without its `?` ('' when there is none). */
export function queryOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? '' : url.slice(q + 1);
}

/** 405 with the methods the path does answer (`allow`) and what to do instead. */
export async function methodNotAllowed(reply: FastifyReply, allow: string, message: string): Promise<void> {
  await reply.code(405).header('Allow', allow).send({ error: 'method_not_allowed', message });
}

/**
 * Requests Node's HTTP parser refuses before fastify sees them (headers or URL too large,
 * malformed requests, slow clients) still get armhook's `{ error, message }` shape.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return;
  // A TLS failure (a handshake that timed out or went wrong) has no HTTP to answer with: an
  // answer written there would wait for a handshake that never comes, holding the connection.
  if (err.code?.startsWith('ERR_TLS_') || err.code?.startsWith('ERR_SSL_')) {
    socket.destroy();
    return;
  }
  const [status, text, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [
          431,
          'Request Header Fields Too Large',
          'headers_too_large',
          'the request line or headers are too large (16 KiB in all); send large parameters in the body',
        ]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'request_timeout', 'the request did not arrive in time']
        : [400, 'Bad Request', 'bad_request', 'the request is not valid HTTP'];
  const body = JSON.stringify({ error: code, message });
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Errors fastify's router raises before any hook runs (a path that is not valid percent-encoded
 * UTF-8, such as `%c0%ae`), in armhook's `{ error, message }` shape.
 */
export function frameworkErrors(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  if (err.code === 'FST_ERR_BAD_URL') {
    void reply.code(400).send({ error: 'bad_url', message: 'the URL path is not valid percent-encoded UTF-8 (e.g. %c0%ae); nothing was run' });
    return;
  }
  void reply.code(err.statusCode ?? 400).send({ error: (err.code ?? 'bad_request').toLowerCase().replace(/^fst_err_/, ''), message: err.message });
}

/**
 * Every error leaves as `{ error, message }` JSON with the right status. 4xx messages say what to
 * do; 5xx are logged in full and shown to the caller only as "internal error".
 */
export function registerErrorHandlers(app: FastifyInstance, options: { bodyLimit: number }): void {
  // Node's own answer to a missing Host is a 400 with an empty body (the server is made with
  // requireHostHeader: false so that this check answers instead).
  app.addHook('onRequest', async (request) => {
    if (request.headers.host === undefined && request.raw.httpVersion === '1.1') {
      throw new AppError(400, 'missing_host', 'HTTP/1.1 requests need a Host header; nothing was run');
    }
  });
  app.setErrorHandler((err: FastifyError | AppError, request, reply) => {
    if (err instanceof AppError) {
      if (err.retryAfterSeconds !== undefined) void reply.header('Retry-After', String(err.retryAfterSeconds));
      void reply.code(err.status).send({ error: err.code, message: err.message });
      return;
    }
    const status = err.statusCode ?? 500;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || status === 413) {
      void reply
        .code(413)
        .send({ error: 'body_too_large', message: `the request body is larger than ${options.bodyLimit} bytes (ARMHOOK_BODY_LIMIT); nothing was run` });
      return;
    }
    if (status === 401) {
      void reply.code(401).send({
        error: 'unauthorized',
        message: 'authentication required: send a user and password (curl --user NAME); ask the operator to add you with `armhook passwd`',
      });
      return;
    }
    if (err.validation) {
      void reply.code(400).send({ error: 'bad_request', message: err.message });
      return;
    }
    if (status >= 400 && status < 500) {
      void reply.code(status).send({ error: (err.code ?? 'bad_request').toLowerCase().replace(/^fst_err_/, ''), message: err.message });
      return;
    }
    request.log.error({ err, path: pathOf(request.url) }, 'request failed unexpectedly; this is a bug in armhook, please report it');
    void reply.code(500).send({ error: 'internal', message: 'internal error; the server log has the details' });
  });

  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: 'not_found', message: `nothing at ${quote(pathOf(request.url))}; GET /hooks lists the hooks` });
  });
}
