// Azure Event Grid's two webhook handshakes, answered without running the hook:
// - Event Grid schema: a POST with `aeg-event-type: SubscriptionValidation` carrying one
//   Microsoft.EventGrid.SubscriptionValidationEvent; the answer `{"validationResponse": <code>}`
//   proves that the endpoint wants the events.
// - CloudEvents 1.0 webhook validation: an OPTIONS with `WebHook-Request-Origin`; the answer
//   `WebHook-Allowed-Origin` (and `WebHook-Allowed-Rate`) grants that origin.
// The route has already checked that the caller may run the hook (Event Grid authenticates with
// an Entra ID token).

import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';

const VALIDATION_EVENT = 'Microsoft.EventGrid.SubscriptionValidationEvent';

/** The answer to a subscription validation request, or undefined when this is not one. */
export function subscriptionValidation(request: FastifyRequest, body: Buffer): { validationResponse: string } | undefined {
  if (String(request.headers['aeg-event-type'] ?? '').toLowerCase() !== 'subscriptionvalidation') return undefined;
  let events: unknown;
  try {
    events = JSON.parse(body.toString('utf8'));
  } catch {
    throw new AppError(400, 'bad_validation_event', 'a SubscriptionValidation request carries a JSON array of events');
  }
  const event = (Array.isArray(events) ? (events as unknown[]) : [events]).find((e): e is { data: { validationCode: unknown } } => {
    const fields = typeof e === 'object' && e !== null ? (e as Record<string, unknown>) : {};
    return fields['eventType'] === VALIDATION_EVENT && typeof fields['data'] === 'object' && fields['data'] !== null;
  });
  const code = event?.data.validationCode;
  if (typeof code !== 'string' || code === '')
    throw new AppError(400, 'bad_validation_event', `a SubscriptionValidation request carries a ${VALIDATION_EVENT} with data.validationCode`);
  request.log.info({ audit: 'eventgrid-validation', caller: request.caller, source: request.ip }, 'Event Grid subscription validated; no job started');
  return { validationResponse: code };
}

/** Answers a CloudEvents webhook validation (OPTIONS with WebHook-Request-Origin); false when it is not one. */
export async function webhookValidation(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
  const origin = request.headers['webhook-request-origin'];
  if (typeof origin !== 'string' || origin === '') return false;
  request.log.info({ audit: 'cloudevents-validation', caller: request.caller, source: request.ip, origin }, 'CloudEvents webhook validated; no job started');
  await reply.code(200).header('WebHook-Allowed-Origin', origin).header('WebHook-Allowed-Rate', '*').header('Allow', 'GET, HEAD, POST, OPTIONS').send();
  return true;
}
