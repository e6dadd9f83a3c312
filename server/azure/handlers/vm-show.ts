import { Type } from '@sinclair/typebox';
import { toHandlerError } from '../errors.ts';
import { defineHandler } from '../handler.ts';
import { ResourceGroupName, VmName, callOptions, groupId, vmId } from './common.ts';
import { statusesOf } from './vms.ts';

/** GET azure/vms/show?rg=&name= — one VM: its size, OS, state and network interfaces. */
export const showVm = defineHandler({
  description: 'Show one virtual machine: size, OS, power and provisioning state, and its network interfaces.',
  params: Type.Object({ rg: ResourceGroupName, name: VmName }, { additionalProperties: false }),
  async run(ctx) {
    const { compute, subscriptionId } = ctx.clients;
    const { rg, name } = ctx.params;
    const options = callOptions(ctx.signal);
    try {
      // The model and the instance view are two ARM reads; neither depends on the other.
      const [vm, view] = await Promise.all([compute.virtualMachines.get(rg, name, options), compute.virtualMachines.instanceView(rg, name, options)]);
      const state = statusesOf(view.statuses);
      const result = {
        id: vm.id ?? vmId(subscriptionId, rg, name),
        name: vm.name ?? name,
        resourceGroup: rg,
        location: vm.location,
        vmSize: vm.hardwareProfile?.vmSize ?? null,
        osType: vm.storageProfile?.osDisk?.osType ?? null,
        powerState: state.powerState,
        provisioningState: vm.provisioningState ?? state.provisioningState,
        networkInterfaces: (vm.networkProfile?.networkInterfaces ?? []).map((nic) => nic.id).filter((id): id is string => Boolean(id)),
      };
      ctx.sink.line(`${rg}/${name}\t${result.powerState ?? 'unknown'}\t${result.vmSize ?? ''}`);
      return result;
    } catch (err) {
      throw toHandlerError(err, {
        what: `read virtual machine ${name} in resource group ${rg}`,
        resource: `virtual machine ${name} in resource group ${rg}`,
        scope: groupId(subscriptionId, rg),
        role: 'Reader',
        principalId: ctx.clients.identity()?.principalId,
        maxRetries: ctx.clients.maxRetries,
      });
    }
  },
});
