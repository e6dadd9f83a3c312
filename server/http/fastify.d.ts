import 'fastify';
import type { AccessPolicy, CallerAccess, SignatureSpec } from '../access/index.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route starts a job whatever its method: cross-site browser requests are refused. */
    startsJob?: boolean;
  }

  interface FastifyRequest {
    /** Who made the request: the basic-auth user, or "anonymous" when auth is off (loopback only). */
    caller: string;
    /** What the caller may run and see (set with `caller`; every route but the health checks). */
    access: CallerAccess;
    /** Set when the route is a signed hook: the signatures that may authenticate it (checked in preHandler). */
    signedBy: { policy: AccessPolicy; specs: SignatureSpec[] } | undefined;
    /** A verified signature's run key (what the signature covers): the run's idempotency key; an Idempotency-Key header is ignored. */
    signedKey: string | undefined;
  }
}
