import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';

/** Refuses (403, nothing runs) a hook or handler the caller may not run; `hook` has no leading slash. */
export function requireRun(request: FastifyRequest, hook: string): void {
  if (request.access.mayRun(hook)) return;
  throw new AppError(
    403,
    'forbidden',
    `${request.caller} may not run /${hook}; ask the operator to add it to a rule for ${request.caller} in the access file (ARMHOOK_ACCESS)`,
  );
}
