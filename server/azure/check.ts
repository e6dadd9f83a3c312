/**
 * `armhook check`'s Azure section: one line per readiness step (instance metadata, identity),
 * then one call to Resource Manager, each with its own verdict.
 */
import type { AzureSession } from './session.ts';
import { toHandlerError } from './errors.ts';
import type { Readiness, ReadinessStep } from './readiness.ts';

/** One line of `armhook check`'s Azure section and whether that step passed. */
export interface CheckLine {
  ok: boolean;
  /** Not verified because an earlier step failed (not ok, and not a problem of its own). */
  skipped?: boolean;
  text: string;
}

export interface CheckResult {
  /** Every line ok. */
  ok: boolean;
  lines: CheckLine[];
}

export interface CheckOptions {
  readiness: Readiness;
  session: AzureSession;
  imdsEndpoint: string;
  armEndpoint: string;
}

/** Waits for readiness's first attempt, then reports each step. */
export async function checkAzure({ readiness, session, imdsEndpoint, armEndpoint }: CheckOptions): Promise<CheckResult> {
  readiness.start();
  await readiness.firstAttempt();
  const lines: CheckLine[] = [];
  const failures = (step: ReadinessStep, fallback: string): void => {
    const texts = readiness
      .problems()
      .filter((p) => p.step === step)
      .map((p) => p.text);
    for (const text of texts.length > 0 ? texts : [fallback]) lines.push({ ok: false, text });
  };
  const m = readiness.metadata();
  if (m) {
    lines.push({
      ok: true,
      text: `instance metadata (${imdsEndpoint}): subscription ${m.subscriptionId}, resource group ${m.resourceGroup}, location ${m.location}, VM ${m.vmName}`,
    });
  } else {
    failures('metadata', 'instance metadata: not read');
  }
  const id = readiness.identity();
  if (id) {
    lines.push({
      ok: true,
      text: `managed identity (${id.identityType}): token obtained for ${session.scope}; principal id ${id.principalId ?? 'unknown'}, tenant ${id.tenantId ?? 'unknown'}, client id ${id.clientId ?? 'unknown'}`,
    });
  } else {
    failures('token', 'managed identity token: not obtained');
  }
  if (!readiness.ready) {
    // Unverified, so not ok; the failing step above is the one to fix.
    lines.push({ ok: false, skipped: true, text: `Resource Manager (${armEndpoint}): not checked (identity or metadata missing)` });
  } else {
    lines.push(await checkResourceManager(readiness, session, armEndpoint));
  }
  return { ok: lines.every((l) => l.ok), lines };
}

async function checkResourceManager(readiness: Readiness, session: AzureSession, armEndpoint: string): Promise<CheckLine> {
  try {
    const c = await session.clients();
    let seen = 0;
    for await (const _group of c.resources.resourceGroups.list({ top: 1, abortSignal: AbortSignal.timeout(30_000) })) {
      seen += 1;
      break;
    }
    return {
      ok: true,
      text: `Resource Manager (${armEndpoint}): reachable; subscription ${c.subscriptionId} readable (${seen ? 'listed a resource group' : 'no resource groups'})`,
    };
  } catch (err) {
    const subscription = readiness.metadata()?.subscriptionId ?? '?';
    const mapped = toHandlerError(err, {
      what: 'list resource groups',
      resource: `subscription ${subscription}`,
      scope: `/subscriptions/${subscription}`,
      role: 'Reader',
      principalId: readiness.identity()?.principalId,
      maxRetries: session.maxRetries,
    });
    return { ok: false, text: `Resource Manager (${armEndpoint}): ${mapped.message}` };
  }
}
