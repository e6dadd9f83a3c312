/**
 * The typed handlers: one row each. Routes, the catalog (/hooks) and the job runner all read this
 * table; a handler's module (with its TypeBox schema) loads on first use, so start-up registers
 * the routes without loading TypeBox or the handlers.
 *
 * Adding a handler: write its module (a `defineHandler({...})` export) and add its row here.
 */
import type { AzureHandler, BodyUse } from './handler.ts';

export interface HandlerRow {
  /** Hook path without a leading slash. */
  path: string;
  method: 'GET' | 'POST';
  /** `document`: the body is the handler's own input (a template), so only the query holds parameters. */
  body: BodyUse;
  load(): Promise<AzureHandler>;
}

/** In catalog order. */
// prettier-ignore
export const HANDLERS: readonly HandlerRow[] = [
  { path: 'azure/whoami', method: 'GET', body: 'params', load: async () => (await import('./handlers/whoami.ts')).whoami },
  { path: 'azure/groups', method: 'GET', body: 'params', load: async () => (await import('./handlers/groups.ts')).listGroups },
  { path: 'azure/groups/create', method: 'POST', body: 'params', load: async () => (await import('./handlers/groups.ts')).createGroup },
  { path: 'azure/groups/delete', method: 'POST', body: 'params', load: async () => (await import('./handlers/groups.ts')).deleteGroup },
  { path: 'azure/vms', method: 'GET', body: 'params', load: async () => (await import('./handlers/vms.ts')).listVms },
  { path: 'azure/vms/show', method: 'GET', body: 'params', load: async () => (await import('./handlers/vm-show.ts')).showVm },
  { path: 'azure/vms/start', method: 'POST', body: 'params', load: async () => (await import('./handlers/vms.ts')).startVm },
  { path: 'azure/vms/stop', method: 'POST', body: 'params', load: async () => (await import('./handlers/vms.ts')).stopVm },
  { path: 'azure/vms/restart', method: 'POST', body: 'params', load: async () => (await import('./handlers/vms.ts')).restartVm },
  { path: 'azure/vms/deallocate', method: 'POST', body: 'params', load: async () => (await import('./handlers/vms.ts')).deallocateVm },
  { path: 'azure/vms/delete', method: 'POST', body: 'params', load: async () => (await import('./handlers/vms.ts')).deleteVm },
  { path: 'azure/vms/run-command', method: 'POST', body: 'params', load: async () => (await import('./handlers/vms.ts')).runCommand },
  { path: 'azure/deployments/create', method: 'POST', body: 'document', load: async () => (await import('./handlers/deployments.ts')).createDeployment },
];
