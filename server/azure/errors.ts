/**
 * ARM failures → AppError a person can act on. `status` is what JSON mode answers with:
 * ARM's 4xx passed through (403/404/409/400/429), 502 for everything else ARM did wrong.
 * Nothing here imports the SDK: RestError is recognised by shape.
 */
import { AppError } from '../errors.ts';

/** What the handler was doing, so an error can name it. */
export interface ArmAction {
  /** Human phrase: "start virtual machine vm1 in resource group rg1". */
  what: string;
  /** The resource a 404 names: "virtual machine vm1 in resource group rg1". */
  resource: string;
  /** Scope a role assignment should be made at for this action. */
  scope: string;
  /** A built-in role that grants the action. */
  role: string;
  /** The managed identity's principal id (from the token's claims), when known. */
  principalId?: string;
  /** Retries the SDK made for 429/5xx before giving up (for the message). */
  maxRetries?: number;
}

interface RestErrorShape {
  name: string;
  message: string;
  statusCode?: number;
  code?: string;
  request?: { url?: string; method?: string };
}

export function isRestError(err: unknown): err is RestErrorShape & Error {
  return err instanceof Error && err.name === 'RestError';
}

/** ARM's own error of a non-2xx answer: `{"error": {"code": ..., "message": ...}}`. */
export interface ArmErrorBody {
  status: number;
  code: string | undefined;
  message: string;
}

/** ARM messages are a sentence or a paragraph; a cap keeps a stray HTML page out of job records. */
const MAX_ARM_MESSAGE = 4000;

/**
 * ARM's error bodies, by the SDK request object that got them (filled in by the clients' pipeline
 * policy, see clients.ts). The SDK's paging helpers throw "Pagination failed with unexpected
 * statusCode 403" without ARM's message; the RestError still carries the request, so the mapping
 * below finds ARM's own code and message through it. Only the code and message are kept: no
 * headers, no request, nothing a token could be in.
 */
const armErrorBodies = new WeakMap<object, ArmErrorBody>();

/** Parses a non-2xx response body and remembers ARM's code and message for `request`. */
export function recordArmError(request: object, status: number, bodyText: string | null | undefined): void {
  if (status < 400 || !bodyText) return;
  let doc: unknown;
  try {
    doc = JSON.parse(bodyText);
  } catch {
    return;
  }
  if (typeof doc !== 'object' || doc === null) return;
  const outer = doc as Record<string, unknown>;
  const inner = typeof outer['error'] === 'object' && outer['error'] !== null ? (outer['error'] as Record<string, unknown>) : outer;
  const message = inner['message'];
  if (typeof message !== 'string' || message === '') return;
  const code = inner['code'];
  armErrorBodies.set(request, {
    status,
    code: typeof code === 'string' && code !== '' ? code : undefined,
    message: message.length > MAX_ARM_MESSAGE ? `${message.slice(0, MAX_ARM_MESSAGE)}…` : message,
  });
}

/** ARM's own error for a RestError, when the clients' policy saw the response it came from. */
export function armErrorOf(err: unknown): ArmErrorBody | undefined {
  if (!isRestError(err)) return undefined;
  const request = (err as { request?: unknown }).request;
  if (typeof request !== 'object' || request === null) return undefined;
  const body = armErrorBodies.get(request);
  // Only for the answer the error is about (a RestError without a status is a send failure).
  return body && body.status === err.statusCode ? body : undefined;
}

/** Roles by the ARM action they are most often missing for. */
export function roleForAction(armAction: string | undefined, fallback: string): string {
  if (!armAction) return fallback;
  const a = armAction.toLowerCase();
  if (a.startsWith('microsoft.compute/virtualmachines/')) return a.endsWith('/read') ? 'Reader' : 'Virtual Machine Contributor';
  if (a.endsWith('/read')) return 'Reader';
  return fallback;
}

export function toHandlerError(err: unknown, action: ArmAction): AppError {
  if (err instanceof AppError) return err;
  if (isRestError(err)) return fromRestError(err, action);
  const message = err instanceof Error ? err.message : String(err);
  // core-lro: "The long-running operation has failed. <code>. <message>"
  const lro = /^The long-running operation has failed\.?\s*(.*)$/s.exec(message);
  if (lro) {
    const detail = lro[1]?.trim();
    return new AppError(502, 'arm_operation_failed', `Azure reports that it could not ${action.what}${detail ? `: ${detail}` : ''}`, {
      resource: action.resource,
    });
  }
  if (message === 'Operation was canceled') {
    return new AppError(409, 'arm_operation_canceled', `the operation to ${action.what} was canceled in Azure`, { resource: action.resource });
  }
  if (err instanceof Error && (err.name === 'CredentialUnavailableError' || err.name === 'AuthenticationError' || err.name === 'AuthenticationRequiredError')) {
    return new AppError(503, 'azure_not_ready', `managed identity token: ${message}`);
  }
  return new AppError(502, 'arm_error', `could not ${action.what}: ${message}`);
}

function fromRestError(err: RestErrorShape & Error, action: ArmAction): AppError {
  const status = err.statusCode;
  // ARM's body when the SDK's message is its own ("Pagination failed with unexpected statusCode 403").
  const arm = armErrorOf(err);
  const armCode = arm?.code ?? err.code;
  const armMessage = arm?.message ?? err.message;
  const details: Record<string, unknown> = { armStatus: status ?? null, armCode: armCode ?? null, armMessage };
  if (status === undefined) {
    // No HTTP answer: connection refused, TLS failure, DNS...
    const endpoint = safeOrigin(err.request?.url);
    const tlsHint = /certificate|self[- ]signed/i.test(armMessage)
      ? ' (ARM behind a private CA, e.g. Azure Stack Hub: give armhook that CA with ARMHOOK_ARM_CA_FILE)'
      : '';
    return new AppError(
      502,
      'arm_unreachable',
      `could not reach Azure Resource Manager${endpoint ? ` at ${endpoint}` : ''} to ${action.what}: ${armMessage}${tlsHint}`,
      details,
    );
  }
  switch (status) {
    case 403:
      return forbidden(armMessage, action, details);
    case 404:
      return new AppError(404, 'arm_not_found', `not found: ${action.resource} (${armCode ?? 'NotFound'}: ${armMessage})`, {
        ...details,
        resource: action.resource,
      });
    case 409:
      return new AppError(409, 'arm_conflict', `conflict while trying to ${action.what}: ${armCode ?? 'Conflict'}: ${armMessage}`, details);
    case 400:
      return new AppError(400, 'arm_bad_request', `Azure refused the request to ${action.what}: ${armCode ?? 'BadRequest'}: ${armMessage}`, details);
    case 429:
      return new AppError(
        429,
        'arm_throttled',
        `Azure Resource Manager kept throttling the request to ${action.what}${retried(action)}: ${armMessage}`,
        details,
      );
    case 401:
      return new AppError(
        502,
        'arm_unauthorized',
        `Azure Resource Manager did not accept the managed identity's token (${armCode ?? '401'}: ${armMessage}); check that the ARM endpoint and the identity belong to the same cloud`,
        details,
      );
    default:
      if (status >= 500) {
        return new AppError(
          502,
          'arm_unavailable',
          `Azure Resource Manager answered ${status}${armCode ? ` (${armCode})` : ''} to the request to ${action.what}${retried(action)}: ${armMessage}`,
          details,
        );
      }
      return new AppError(
        502,
        'arm_error',
        `Azure Resource Manager answered ${status}${armCode ? ` (${armCode})` : ''} to the request to ${action.what}: ${armMessage}`,
        details,
      );
  }
}

function forbidden(armMessage: string, action: ArmAction, details: Record<string, unknown>): AppError {
  // ARM: "The client '<id>' with object id '<oid>' does not have authorization to perform
  // action '<action>' over scope '<scope>' or the scope is invalid. ..."
  const armAction = /perform action '([^']+)'/.exec(armMessage)?.[1];
  const armScope = /over scope '([^']+)'/.exec(armMessage)?.[1];
  const objectId = /with object id '([^']+)'/.exec(armMessage)?.[1];
  const principalId = action.principalId ?? objectId;
  const role = roleForAction(armAction, action.role);
  const assignee = principalId ?? '<principal id of the VM identity>';
  const command = `az role assignment create --assignee ${assignee} --role "${role}" --scope ${action.scope}`;
  const who = principalId ? `the VM's managed identity (principal id ${principalId})` : "the VM's managed identity";
  const message =
    `${who} may not ${action.what}` +
    (armAction ? ` (missing permission ${armAction}${armScope ? ` on ${armScope}` : ''})` : '') +
    `. Grant it the "${role}" role on ${action.scope}, e.g.: ${command}`;
  return new AppError(403, 'arm_forbidden', message, {
    ...details,
    principalId: principalId ?? null,
    scope: action.scope,
    role,
    permission: armAction ?? null,
    command,
  });
}

function retried(action: ArmAction): string {
  return action.maxRetries ? ` (retried ${action.maxRetries} times)` : '';
}

function safeOrigin(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * The error a handler throws when its job was cancelled or timed out. The job runner decides the
 * final status (cancelled / timed-out); this carries what may still be going on in Azure.
 */
export function abortedError(action: ArmAction, extra: Record<string, unknown> = {}, signal?: AbortSignal): AppError {
  const reason = signal?.reason instanceof Error ? signal.reason.message : typeof signal?.reason === 'string' ? signal.reason : undefined;
  return new AppError(
    409,
    'aborted',
    `stopped waiting for Azure to ${action.what}${reason ? ` (${reason})` : ''}; the operation may still be running in Azure`,
    { mayStillBeRunning: true, resource: action.resource, ...extra },
  );
}
