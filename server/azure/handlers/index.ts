import type { AzureHandler } from './common.ts';
import { createDeployment } from './deployments.ts';
import { createGroup, deleteGroup, listGroups } from './groups.ts';
import { deallocateVm, deleteVm, listVms, restartVm, runCommand, startVm, stopVm } from './vms.ts';
import { whoami } from './whoami.ts';

/** Every typed handler, in catalog order. */
export const azureHandlers: readonly AzureHandler[] = [
  whoami,
  listGroups,
  createGroup,
  deleteGroup,
  listVms,
  startVm,
  stopVm,
  restartVm,
  deallocateVm,
  deleteVm,
  runCommand,
  createDeployment,
] as unknown as readonly AzureHandler[];
