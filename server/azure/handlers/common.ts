/**
 * Shared pieces of the typed handlers: parameter schemas (names match ^[a-z][a-z0-9_]*$, values
 * are anchored patterns so nothing odd reaches an ARM URL), resource ids and scopes.
 */
import { Type } from '@sinclair/typebox';

// ARM's rules: resource group 1-90 of letters, digits, - _ . ( ), not ending with '.';
// VM 1-64 of letters, digits, - _ . ; deployment 1-64 of letters, digits, - _ . ( ).
export const ResourceGroupName = Type.String({
  pattern: '^[-\\w.()]{0,89}[-\\w()]$',
  description: 'resource group name',
});
export const VmName = Type.String({ pattern: '^[A-Za-z0-9_][-A-Za-z0-9_.]{0,63}$', description: 'virtual machine name' });
export const DeploymentName = Type.String({ pattern: '^[-\\w.()]{1,64}$', description: 'deployment name' });
export const Location = Type.String({ pattern: '^[a-z][a-z0-9]{1,39}$', description: 'Azure region, e.g. westeurope' });

export function groupId(subscriptionId: string, rg: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${rg}`;
}

export function vmId(subscriptionId: string, rg: string, name: string): string {
  return `${groupId(subscriptionId, rg)}/providers/Microsoft.Compute/virtualMachines/${name}`;
}

export function deploymentId(subscriptionId: string, rg: string, name: string): string {
  return `${groupId(subscriptionId, rg)}/providers/Microsoft.Resources/deployments/${name}`;
}

/** The resource group named in an ARM resource id, if any. */
export function resourceGroupOf(id: string | undefined): string | undefined {
  return id ? /\/resourceGroups\/([^/]+)/i.exec(id)?.[1] : undefined;
}

/** Options every SDK call gets: the job's abort signal. */
export function callOptions(signal: AbortSignal): { abortSignal: AbortSignal } {
  return { abortSignal: signal };
}
