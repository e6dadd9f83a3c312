import { setTimeout as sleep } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import type { DeploymentExtended, DeploymentOperation, DeploymentParameter } from '@azure/arm-resourcesdeployments';
import type { AzureClients } from '../clients.ts';
import { AppError } from '../../errors.ts';
import { defineHandler, type HandlerSink } from '../handler.ts';
import { armErrorOf, isRestError, type ArmAction } from '../errors.ts';
import { runLro } from '../lro.ts';
import { DeploymentName, ResourceGroupName, deploymentId, groupId } from './common.ts';

/** How long armhook waits for ARM to accept a cancel after the job was aborted. */
const CANCEL_TIMEOUT_MS = 30_000;

export interface DeploymentBody {
  template: Record<string, unknown>;
  parameters: Record<string, DeploymentParameter>;
}

/**
 * The request body: `{"template": {...}, "parameters": {...}}`. Also accepted: a bare ARM template
 * (a body with `$schema` and `resources`), parameters in parameter-file form (`{"$schema",
 * "parameters": {...}}`) and plain parameter values (`{"name": "x"}` → `{"name": {"value": "x"}}`).
 */
export function parseDeploymentBody(body: Buffer): DeploymentBody {
  const text = body.toString('utf8').trim();
  if (text === '') throw badBody('the request body is empty; send JSON {"template": {...}, "parameters": {...}}');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw badBody(`the request body is not JSON (${(err as Error).message}); send {"template": {...}, "parameters": {...}}`);
  }
  if (!isRecord(doc)) throw badBody('the request body must be a JSON object {"template": {...}, "parameters": {...}}');
  let template: unknown = doc['template'];
  let parameters: unknown = doc['parameters'];
  if (template === undefined && typeof doc['$schema'] === 'string' && 'resources' in doc) {
    template = doc; // a bare template
    parameters = undefined;
  }
  if (!isRecord(template)) throw badBody('"template" must be a JSON object (an ARM template)');
  if (!('resources' in template)) throw badBody('"template" has no "resources": is it an ARM template?');
  if (parameters === undefined || parameters === null) parameters = {};
  if (!isRecord(parameters)) throw badBody('"parameters" must be a JSON object');
  if (typeof parameters['$schema'] === 'string' && isRecord(parameters['parameters'])) parameters = parameters['parameters'];
  const normalized: Record<string, DeploymentParameter> = {};
  for (const [name, value] of Object.entries(parameters as Record<string, unknown>)) {
    normalized[name] = isRecord(value) && ('value' in value || 'reference' in value || 'expression' in value) ? value : { value };
  }
  return { template, parameters: normalized };
}

function badBody(message: string): AppError {
  return new AppError(400, 'bad_body', message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface OperationView {
  operationId: string;
  provisioningState: string;
  resourceType: string | null;
  resourceName: string | null;
  targetId: string | null;
  statusCode: string | null;
  error: { code: string | null; message: string | null } | null;
  timestamp: string | null;
}

function viewOf(op: DeploymentOperation): OperationView | undefined {
  const p = op.properties;
  if (!op.operationId || !p?.provisioningState) return undefined;
  const err = p.statusMessage?.error;
  return {
    operationId: op.operationId,
    provisioningState: p.provisioningState,
    resourceType: p.targetResource?.resourceType ?? null,
    resourceName: p.targetResource?.resourceName ?? null,
    targetId: p.targetResource?.id ?? null,
    statusCode: p.statusCode ?? null,
    error: err ? { code: err.code ?? null, message: err.message ?? null } : null,
    timestamp: p.timestamp ? p.timestamp.toISOString() : null,
  };
}

/** Streams each deployment operation's state as it changes (one progress event per change, in order). */
class OperationWatcher {
  readonly #seen = new Map<string, OperationView>();
  readonly #sink: HandlerSink;
  readonly #deployment: string;

  constructor(sink: HandlerSink, deployment: string) {
    this.#sink = sink;
    this.#deployment = deployment;
  }

  update(ops: DeploymentOperation[]): void {
    const views = ops.map(viewOf).filter((v): v is OperationView => v !== undefined);
    // Oldest first, so that events come in the order the operations started.
    views.sort((a, b) => (a.timestamp ?? '').localeCompare(b.timestamp ?? '') || a.operationId.localeCompare(b.operationId));
    for (const v of views) {
      const before = this.#seen.get(v.operationId);
      if (before?.provisioningState === v.provisioningState) continue;
      this.#seen.set(v.operationId, v);
      const target = v.resourceType || v.resourceName ? `${v.resourceType ?? '?'}/${v.resourceName ?? '?'}` : v.operationId;
      this.#sink.progress({ operation: 'deployment-operation', id: this.#deployment, ...v });
      this.#sink.line(`${target}: ${v.provisioningState}${v.error ? ` (${v.error.code}: ${v.error.message})` : ''}`);
    }
  }

  failed(): OperationView[] {
    return [...this.#seen.values()].filter((v) => /fail/i.test(v.provisioningState));
  }
}

async function listOperations(clients: AzureClients, rg: string, name: string, signal: AbortSignal): Promise<DeploymentOperation[]> {
  const ops: DeploymentOperation[] = [];
  for await (const op of clients.deployments.deploymentOperations.list(rg, name, { abortSignal: signal })) ops.push(op);
  return ops;
}

/** Polls the operations list until `stop` is aborted. Never fails the deployment: a failed list is logged. */
async function watchOperations(
  clients: AzureClients,
  rg: string,
  name: string,
  watcher: OperationWatcher,
  stop: AbortSignal,
  log: { debug(obj: object, msg: string): void },
): Promise<void> {
  while (!stop.aborted) {
    try {
      watcher.update(await listOperations(clients, rg, name, stop));
    } catch (err) {
      if (stop.aborted) return;
      // 404 before ARM has registered the deployment; anything else: try again next round.
      if (!(isRestError(err) && err.statusCode === 404))
        log.debug({ err: armErrorOf(err)?.message ?? (err as Error).message }, 'azure: listing deployment operations failed');
    }
    try {
      await sleep(clients.pollIntervalMs, undefined, { signal: stop });
    } catch {
      return;
    }
  }
}

function flattenOutputs(outputs: unknown): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  if (!isRecord(outputs)) return result;
  for (const [key, value] of Object.entries(outputs)) result[key] = isRecord(value) && 'value' in value ? value['value'] : value;
  return result;
}

/** POST azure/deployments/create?rg=&name= with the template in the JSON body. */
export const createDeployment = defineHandler({
  description:
    'Deploy an ARM template into resource group `rg` as deployment `name` (incremental mode). Body: JSON {"template": {...}, "parameters": {...}}. Streams each deployment operation as its state changes; the result carries the outputs.',
  params: Type.Object({ rg: ResourceGroupName, name: DeploymentName }, { additionalProperties: false }),
  // The HTTP layer calls this before it submits the job: a body that is no deployment document is a 400, not a failed job.
  validateBody(body) {
    parseDeploymentBody(body);
  },
  async run(ctx) {
    const { rg, name } = ctx.params;
    const body = parseDeploymentBody(ctx.body);
    const clients = ctx.clients;
    const id = deploymentId(clients.subscriptionId, rg, name);
    const action: ArmAction = {
      what: `deploy template ${name} to resource group ${rg}`,
      resource: `deployment ${name} in resource group ${rg}`,
      scope: groupId(clients.subscriptionId, rg),
      role: 'Contributor',
      principalId: clients.identity()?.principalId,
      maxRetries: clients.maxRetries,
    };
    const watcher = new OperationWatcher(ctx.sink, id);
    ctx.sink.line(`deploying ${name} to resource group ${rg}...`);
    const poller = clients.deployments.deployments.createOrUpdate(
      rg,
      name,
      { properties: { mode: 'Incremental', template: body.template, parameters: body.parameters } },
      { abortSignal: ctx.signal, updateIntervalInMs: clients.pollIntervalMs },
    );
    const lro = runLro(poller, { sink: ctx.sink, signal: ctx.signal, action, operation: 'deployment', id });
    // Watch the operations alongside the LRO, from when ARM has accepted the deployment until it ends.
    const stopWatching = new AbortController();
    const watching = poller.submitted().then(
      () => watchOperations(clients, rg, name, watcher, AbortSignal.any([stopWatching.signal, ctx.signal]), ctx.log),
      () => undefined,
    );
    let outcome: { ok: true; deployment: Awaited<typeof lro> } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, deployment: await lro };
    } catch (error) {
      outcome = { ok: false, error };
    } finally {
      stopWatching.abort();
      await watching;
    }

    if (!outcome.ok && ctx.signal.aborted) throw await cancelAfterAbort(clients, rg, name, id, outcome.error);

    // One last look, so the stream ends with every operation's final state. The deployment has
    // ended in Azure either way: an abort now only cuts this listing short.
    try {
      watcher.update(await listOperations(clients, rg, name, ctx.signal));
    } catch (err) {
      ctx.log.debug({ err: armErrorOf(err)?.message ?? (err as Error).message }, 'azure: final listing of deployment operations failed');
    }

    if (!outcome.ok) throw deploymentFailure(outcome.error, watcher, { rg, name, id });

    const result = deploymentResult(outcome.deployment, { rg, name, id });
    ctx.sink.line(`deployment ${name}: ${result.provisioningState}`);
    for (const [key, value] of Object.entries(result.outputs)) ctx.sink.line(`output ${key} = ${JSON.stringify(value)}`);
    return result;
  },
});

/** A failed deployment's error: ARM's failure names the first failed operation and lists them all; any other error passes through. */
function deploymentFailure(error: unknown, watcher: OperationWatcher, at: { rg: string; name: string; id: string }): unknown {
  if (!(error instanceof AppError && error.code === 'arm_operation_failed')) return error;
  const failedOps = watcher.failed();
  const first = failedOps[0];
  const why = first?.error ? ` ${first.resourceType ?? ''}/${first.resourceName ?? ''}: ${first.error.code}: ${first.error.message}` : '';
  return new AppError(502, 'deployment_failed', `deployment ${at.name} in resource group ${at.rg} failed.${why || ` ${error.message}`}`, {
    id: at.id,
    provisioningState: 'Failed',
    failedOperations: failedOps,
    armMessage: error.message,
  });
}

/** What a succeeded deployment answers: its state, outputs (flattened) and the resources it made. */
function deploymentResult(d: DeploymentExtended, at: { rg: string; name: string; id: string }) {
  const props = d.properties;
  return {
    id: d.id ?? at.id,
    name: d.name ?? at.name,
    resourceGroup: at.rg,
    provisioningState: props?.provisioningState ?? 'Succeeded',
    outputs: flattenOutputs(props?.outputs),
    outputResources: (props?.outputResources ?? []).map((r) => r.id).filter((x): x is string => typeof x === 'string'),
    correlationId: props?.correlationId ?? null,
    duration: props?.duration ?? null,
  };
}

/**
 * The job was cancelled or timed out: ask ARM to cancel the deployment (its own request, not tied
 * to the aborted signal) and say in the error what may still be running.
 */
async function cancelAfterAbort(clients: AzureClients, rg: string, name: string, id: string, cause: unknown): Promise<AppError> {
  let cancelRequested = false;
  let cancelError: string | null = null;
  try {
    await clients.deployments.deployments.cancel(rg, name, { abortSignal: AbortSignal.timeout(CANCEL_TIMEOUT_MS) });
    cancelRequested = true;
  } catch (err) {
    cancelError = isRestError(err) ? `${err.statusCode ?? ''} ${err.code ?? ''}: ${err.message}`.trim() : (err as Error).message;
  }
  const base = cause instanceof AppError && cause.code === 'aborted' ? cause : undefined;
  const message = cancelRequested
    ? `stopped waiting for deployment ${name} in resource group ${rg}; cancellation was requested in Azure. Resources it already created or changed stay as they are, and operations in flight may still finish.`
    : `stopped waiting for deployment ${name} in resource group ${rg}; Azure did not accept the cancellation (${cancelError}), so the deployment may still be running.`;
  return new AppError(base?.status ?? 409, 'aborted', message, {
    ...(base?.details ?? {}),
    id,
    mayStillBeRunning: true,
    cancelRequested,
    cancelError,
  });
}
