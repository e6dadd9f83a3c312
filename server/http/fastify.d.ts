import 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request: the basic-auth user, or "anonymous" when auth is off (loopback only). */
    caller: string;
  }
}
