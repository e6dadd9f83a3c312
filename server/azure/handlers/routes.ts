/**
 * Where the typed handlers live, without loading them: routes are registered at start-up from
 * this list, and the handler modules (with their TypeBox schemas) load on first use. A test
 * keeps it equal to the handlers' own paths and methods.
 */
export interface HandlerRoute {
  path: string;
  method: 'GET' | 'POST';
}

export const HANDLER_ROUTES: readonly HandlerRoute[] = [
  { path: 'azure/whoami', method: 'GET' },
  { path: 'azure/groups', method: 'GET' },
  { path: 'azure/groups/create', method: 'POST' },
  { path: 'azure/groups/delete', method: 'POST' },
  { path: 'azure/vms', method: 'GET' },
  { path: 'azure/vms/start', method: 'POST' },
  { path: 'azure/vms/stop', method: 'POST' },
  { path: 'azure/vms/restart', method: 'POST' },
  { path: 'azure/vms/deallocate', method: 'POST' },
  { path: 'azure/vms/delete', method: 'POST' },
  { path: 'azure/vms/run-command', method: 'POST' },
  { path: 'azure/deployments/create', method: 'POST' },
];
