import basicAuth from '@fastify/basic-auth';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OPEN_POLICY, type AccessFile, type AccessPolicy } from '../access/index.ts';
import { TokenError, type EntraVerifier } from '../auth/index.ts';
import { AppError } from '../errors.ts';
import { checkGithubSignature, checkHmacSignature, ReplayGuard, SIGNATURE_HEADERS } from '../auth/signatures.ts';
import { PUBLIC_PATHS } from './health.ts';
import { crossSiteReason } from './security.ts';
import { pathOf, queryOf } from './errors.ts';

export interface Authenticator {
  authenticate(user: string, password: string): Promise<boolean>;
}

export interface AuthOptions {
  /** Basic auth (htpasswd); none: no passwords. */
  authenticator: Authenticator | undefined;
  /** Entra ID bearer tokens; none: no tokens. */
  entra: EntraVerifier | undefined;
  /** The access file; none: every authenticated caller may do everything. */
  access: AccessFile | undefined;
  /** Failed authentications an address may make per window before it gets 429 (default 10). */
  failureLimit?: number;
  /** ms (default one minute). */
  failureWindowMs?: number;
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const BASIC_CHALLENGE = 'Basic realm="armhook", charset="UTF-8"';
const BEARER_CHALLENGE = 'Bearer realm="armhook"';

type Scheme = 'none' | 'basic' | 'bearer' | 'signature' | 'other';
/** Settles who the caller is from its credentials, or throws an AuthFailure. */
type Authenticate = (request: FastifyRequest, reply: FastifyReply) => Promise<string>;
type FailureLimiter = ReturnType<FastifyInstance['createRateLimit']>;
type Refuse = (request: FastifyRequest, reply: FastifyReply, failure: AuthFailure) => Promise<never>;

/** A failed authentication: what the audit line and the 401 say (never the credentials). */
class AuthFailure extends Error {
  readonly scheme: Scheme;
  /** Counts towards the address's failure limit (wrong credentials, not missing ones or our outage). */
  readonly counts: boolean;
  readonly challenges: string[];
  constructor(scheme: Scheme, reason: string, options: { counts: boolean; challenges: string[] }) {
    super(reason);
    this.scheme = scheme;
    this.counts = options.counts;
    this.challenges = options.challenges;
  }
}

function schemeOf(header: string | undefined): Scheme {
  if (header === undefined || header === '') return 'none';
  const name = header.trimStart().split(/[ \t]/, 1)[0]?.toLowerCase();
  return name === 'basic' ? 'basic' : name === 'bearer' ? 'bearer' : 'other';
}

/** The caller's credentials say who it is: the htpasswd user, `entra:<oid>`, or `anonymous` when nothing is configured. */
function authenticators(app: FastifyInstance, options: AuthOptions): Authenticate | undefined {
  const { authenticator, entra } = options;
  if (!authenticator && !entra) return undefined;
  const challenges = [...(authenticator ? [BASIC_CHALLENGE] : []), ...(entra ? [BEARER_CHALLENGE] : [])];
  const accepted = [authenticator ? 'a user and password (curl --user NAME)' : '', entra ? 'an Entra ID bearer token (Authorization: Bearer …)' : '']
    .filter(Boolean)
    .join(' or ');

  const basic = (request: FastifyRequest, reply: FastifyReply): Promise<string> =>
    new Promise((resolve, reject) => {
      app.basicAuth(request, reply, (err) => {
        if (!err) resolve(request.caller);
        // Our own refusals pass through: a wrong password, or the password checks being busy (503).
        else if (err instanceof AuthFailure || (err instanceof AppError && err.status !== 401)) reject(err);
        else reject(new AuthFailure('basic', 'malformed basic credentials', { counts: true, challenges }));
      });
    });

  const bearer = async (request: FastifyRequest): Promise<string> => {
    const token = /^[ \t]*bearer[ \t]+([A-Za-z0-9._~+/=-]+)[ \t]*$/i.exec(request.headers.authorization ?? '')?.[1];
    const invalid = (reason: string, counts = true): AuthFailure =>
      new AuthFailure('bearer', reason, { counts, challenges: [`Bearer error="invalid_token", error_description="${reason.replaceAll('"', "'")}"`] });
    if (!entra) throw invalid('bearer tokens are not accepted here (no ARMHOOK_ENTRA_TENANT); send a user and password');
    if (!token) throw invalid('the token is malformed');
    try {
      return `entra:${(await entra.verify(token)).oid}`;
    } catch (err) {
      if (err instanceof TokenError) throw invalid(err.message, !err.ours);
      throw err;
    }
  };

  return async (request, reply) => {
    const scheme = schemeOf(request.headers.authorization);
    if (scheme === 'bearer') return bearer(request);
    if (scheme === 'basic' && authenticator) return basic(request, reply);
    if (scheme === 'basic')
      throw new AuthFailure('basic', 'basic auth is not enabled here (no ARMHOOK_HTPASSWD); send an Entra ID bearer token', { counts: true, challenges });
    throw new AuthFailure(scheme, scheme === 'none' ? `authentication required: send ${accepted}` : `unsupported authorization scheme; send ${accepted}`, {
      counts: scheme !== 'none',
      challenges,
    });
  };
}

/**
 * Failed authentications per source address, in @fastify/rate-limit's own store (request.ip: the
 * socket's address, or X-Forwarded-For's when the socket is a trusted proxy, ARMHOOK_TRUST_PROXY).
 * Loaded only when authentication is configured.
 */
async function failureLimiter(app: FastifyInstance, options: AuthOptions): Promise<FailureLimiter> {
  const { default: rateLimit } = await import('@fastify/rate-limit');
  await app.register(rateLimit, {
    global: false,
    max: options.failureLimit ?? 10,
    timeWindow: options.failureWindowMs ?? 60_000,
    keyGenerator: (request) => request.ip,
  });
  return app.createRateLimit();
}

/**
 * Refuses cross-site browser requests that change something or start a job (routes marked
 * `config: { startsJob: true }`, e.g. GET typed handlers), then authenticates every request but
 * the health checks and decides what the caller may do (`request.access`). Failed
 * authentications are limited per source address; each one is an audit line. Without any
 * authentication configured every caller is "anonymous" — start-up only allows that on a
 * loopback address.
 */
export async function registerAuth(app: FastifyInstance, options: AuthOptions): Promise<void> {
  app.decorateRequest('caller', 'anonymous');
  app.decorateRequest('access', null as unknown as FastifyRequest['access']);
  app.decorateRequest('signedBy', undefined);
  app.decorateRequest('signedKey', undefined);

  app.addHook('onRequest', refuseCrossSite);
  const authenticate = authenticators(app, options);
  if (options.authenticator) await registerBasicAuth(app, options.authenticator, options.entra !== undefined);
  const failures = authenticate || options.access ? await failureLimiter(app, options) : undefined;
  const refuse = refusal(failures);
  app.addHook('onRequest', identifyCaller({ authenticate, access: options.access, failures, refuse }));
  app.addHook('preHandler', verifySignature(new ReplayGuard(), refuse));
}

/** A browser's cross-site request that changes something or starts a job is refused before anything else. */
async function refuseCrossSite(request: FastifyRequest): Promise<void> {
  if (!STATE_CHANGING.has(request.method) && request.routeOptions.config.startsJob !== true) return;
  const reason = crossSiteReason(request.headers);
  if (reason)
    throw new AppError(
      403,
      'cross_site',
      `cross-site request refused (${reason}): armhook only accepts requests from its own origin or from non-browser clients; nothing was run`,
    );
}

/** @fastify/basic-auth checking users and passwords against the htpasswd file; a wrong one is an AuthFailure that counts. */
async function registerBasicAuth(app: FastifyInstance, authenticator: Authenticator, bearerToo: boolean): Promise<void> {
  await app.register(basicAuth, {
    authenticate: { realm: 'armhook' },
    validate: async (user, password, request) => {
      if (!(await authenticator.authenticate(user, password))) {
        throw new AuthFailure('basic', 'unknown user or wrong password', {
          counts: true,
          challenges: [BASIC_CHALLENGE, ...(bearerToo ? [BEARER_CHALLENGE] : [])],
        });
      }
      request.caller = user;
    },
  });
}

/** Logs the failure (audit), counts it against the address, and answers 401. */
function refusal(failures: FailureLimiter | undefined): Refuse {
  return async (request, reply, failure) => {
    request.log.warn(
      { audit: 'auth-failed', source: request.ip, method: request.method, path: pathOf(request.url), scheme: failure.scheme, reason: failure.message },
      'authentication failed',
    );
    if (failure.counts && failures) await failures(request);
    if (failure.challenges.length > 0) void reply.header('WWW-Authenticate', failure.challenges.length === 1 ? failure.challenges[0] : failure.challenges);
    throw new AppError(401, 'unauthorized', failure.message);
  };
}

/** 429 with Retry-After while the address has used up its failed authentications. */
async function refuseThrottled(request: FastifyRequest, failures: FailureLimiter): Promise<void> {
  const state = await failures(request, { increment: false });
  if (state.isAllowed || state.remaining !== 0) return;
  request.log.warn(
    { audit: 'auth-throttled', source: request.ip, method: request.method, path: pathOf(request.url) },
    'request refused: too many failed authentications from this address',
  );
  const seconds = Math.max(1, state.ttlInSeconds);
  throw new AppError(429, 'too_many_failures', `too many failed authentications from ${request.ip}; try again in ${seconds} s`, undefined, {
    retryAfterSeconds: seconds,
  });
}

/**
 * Who the caller is and what it may do: nobody for the health checks; a signed hook's caller is
 * settled by its signature once the body is read (verifySignature), any other by its credentials.
 */
function identifyCaller(parts: {
  authenticate: Authenticate | undefined;
  access: AccessFile | undefined;
  failures: FailureLimiter | undefined;
  refuse: Refuse;
}): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const { authenticate, access, failures, refuse } = parts;
  return async (request, reply) => {
    // The health checks answer anyone; any other method on their paths is authenticated as usual.
    if ((request.method === 'GET' || request.method === 'HEAD') && PUBLIC_PATHS.has(pathOf(request.url))) return;
    if (failures) await refuseThrottled(request, failures);
    const policy: AccessPolicy = access ? await access.current() : OPEN_POLICY;
    const signed = request.method === 'POST' ? policy.signaturesFor(pathOf(request.url).slice(1)) : [];
    if (signed.length > 0) {
      if (!signed.some((spec) => request.headers[SIGNATURE_HEADERS[spec.scheme]] !== undefined)) {
        const expected = [...new Set(signed.map((spec) => SIGNATURE_HEADERS[spec.scheme]))].join(' or ');
        await refuse(request, reply, new AuthFailure('signature', `this hook takes signed requests only: send ${expected}`, { counts: false, challenges: [] }));
      }
      request.signedBy = { policy, specs: signed };
    }
    if (authenticate && (signed.length === 0 || request.headers.authorization !== undefined)) {
      // Credentials of another kind sent along with a signature must be right too.
      try {
        request.caller = await authenticate(request, reply);
      } catch (err) {
        if (!(err instanceof AuthFailure)) throw err;
        await refuse(request, reply, err);
      }
    }
    request.access = policy.forCaller(request.caller);
  };
}

/** A signed hook's request runs when one of its signatures verifies over the body; otherwise it is refused. */
function verifySignature(replay: ReplayGuard, refuse: Refuse): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  return async (request, reply) => {
    const signed = request.signedBy;
    if (!signed) return;
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    let problem = 'no valid signature';
    for (const spec of signed.specs) {
      const header = request.headers[SIGNATURE_HEADERS[spec.scheme]];
      if (typeof header !== 'string') continue;
      const signedRequest = { method: request.method, url: request.url, body, header };
      const check =
        spec.scheme === 'github'
          ? checkGithubSignature(spec.secret, signedRequest)
          : checkHmacSignature(spec.secret, signedRequest, replay, Math.floor(Date.now() / 1000));
      if (check.valid) {
        request.caller = `signature:${spec.name}`;
        request.access = signed.policy.forCaller(request.caller);
        // What the signature covers keys the run, never a header a replay could change.
        request.signedKey = check.runKey;
        if (spec.scheme === 'github') githubDelivery(request, body);
        return;
      }
      problem = check.problem;
    }
    await refuse(request, reply, new AuthFailure('signature', problem, { counts: true, challenges: [] }));
  };
}

/**
 * A verified GitHub delivery: the signature covers the body only, so a query string is refused;
 * a form-encoded delivery (`payload=<json>`) is its JSON from here on (params, stdin).
 */
function githubDelivery(request: FastifyRequest, body: Buffer): void {
  if (queryOf(request.url) !== '')
    throw new AppError(
      400,
      'unsigned_query',
      'query parameters are not covered by a GitHub signature; put the values in the payload (and declare them with from=)',
    );
  const type = String(request.headers['content-type'] ?? '')
    .split(';')[0]
    ?.trim()
    .toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return;
  const payload = new URLSearchParams(body.toString('utf8')).get('payload');
  if (payload === null) throw new AppError(400, 'bad_payload', 'a form-encoded GitHub delivery carries its JSON in the "payload" field');
  request.body = Buffer.from(payload, 'utf8');
  request.headers['content-type'] = 'application/json';
}
