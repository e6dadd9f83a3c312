import { Type } from '@sinclair/typebox';
import type { VirtualMachine } from '@azure/arm-compute';
import type { AzureClients } from '../clients.ts';
import { AppError } from '../../errors.ts';
import { toHandlerError, type ArmAction } from '../errors.ts';
import { runLro } from '../lro.ts';
import { ResourceGroupName, VmName, callOptions, groupId, resourceGroupOf, vmId } from './common.ts';
import { defineHandler, type AzureHandler } from '../handler.ts';

interface VmStatuses {
  powerState: string | null;
  provisioningState: string | null;
}

/** PowerState/running → running; ProvisioningState/succeeded → succeeded. */
export function statusesOf(statuses: Array<{ code?: string }> | undefined): VmStatuses {
  let powerState: string | null = null;
  let provisioningState: string | null = null;
  for (const s of statuses ?? []) {
    const [kind, value] = (s.code ?? '').split('/');
    if (kind === 'PowerState' && value) powerState = value;
    if (kind === 'ProvisioningState' && value) provisioningState = value;
  }
  return { powerState, provisioningState };
}

function vmAction(clients: AzureClients, what: string, rg: string, name: string | undefined): ArmAction {
  return {
    what,
    resource: name ? `virtual machine ${name} in resource group ${rg}` : `resource group ${rg}`,
    scope: groupId(clients.subscriptionId, rg),
    role: 'Virtual Machine Contributor',
    principalId: clients.identity()?.principalId,
    maxRetries: clients.maxRetries,
  };
}

/** GET azure/vms?rg= */
export const listVms = defineHandler({
  description: 'List virtual machines with their power state: those of resource group `rg`, or all in the subscription when `rg` is absent.',
  params: Type.Object({ rg: Type.Optional(ResourceGroupName) }, { additionalProperties: false }),
  async run(ctx) {
    const { compute, subscriptionId } = ctx.clients;
    const { rg } = ctx.params;
    const options = callOptions(ctx.signal);
    const vms: VirtualMachine[] = [];
    // The list calls do not return instance views; `statusOnly=true` on the subscription-wide list
    // returns every VM's statuses in one request instead of one instance-view call per VM.
    const statuses = new Map<string, VmStatuses>();
    try {
      const details = rg ? compute.virtualMachines.list(rg, options) : compute.virtualMachines.listAll(options);
      for await (const vm of details) vms.push(vm);
      if (vms.length > 0) {
        for await (const vm of compute.virtualMachines.listAll({ ...options, statusOnly: 'true' })) {
          if (vm.id) statuses.set(vm.id.toLowerCase(), statusesOf(vm.instanceView?.statuses));
        }
      }
    } catch (err) {
      throw toHandlerError(err, {
        what: rg ? `list the virtual machines of resource group ${rg}` : 'list the virtual machines of the subscription',
        resource: rg ? `resource group ${rg}` : `subscription ${subscriptionId}`,
        scope: rg ? groupId(subscriptionId, rg) : `/subscriptions/${subscriptionId}`,
        role: 'Reader',
        principalId: ctx.clients.identity()?.principalId,
        maxRetries: ctx.clients.maxRetries,
      });
    }
    const items = vms.map((vm) => {
      const s = (vm.id && statuses.get(vm.id.toLowerCase())) || statusesOf(vm.instanceView?.statuses);
      return {
        id: vm.id ?? null,
        name: vm.name ?? null,
        resourceGroup: resourceGroupOf(vm.id) ?? rg ?? null,
        location: vm.location,
        vmSize: vm.hardwareProfile?.vmSize ?? null,
        powerState: s.powerState,
        provisioningState: vm.provisioningState ?? s.provisioningState,
      };
    });
    for (const v of items) ctx.sink.line(`${v.resourceGroup}/${v.name}\t${v.powerState ?? 'unknown'}\t${v.vmSize ?? ''}`);
    return { subscriptionId, resourceGroup: rg ?? null, count: items.length, vms: items };
  },
});

type PowerOperation = 'start' | 'stop' | 'restart' | 'deallocate' | 'delete';

const DESCRIPTIONS: Record<PowerOperation, string> = {
  start: 'Start a virtual machine (long-running; progress events).',
  stop: 'Power off a virtual machine; it keeps its compute allocation and is still billed (long-running; progress events). Use deallocate to stop billing.',
  restart: 'Restart a virtual machine (long-running; progress events).',
  deallocate: 'Shut down a virtual machine and release its compute resources (long-running; progress events).',
  delete: 'Delete a virtual machine (its disks and NICs stay unless they were created with delete options) (long-running; progress events).',
};

const VERBS: Record<PowerOperation, string> = {
  start: 'start',
  stop: 'power off',
  restart: 'restart',
  deallocate: 'deallocate',
  delete: 'delete',
};

function powerHandler(op: PowerOperation): AzureHandler {
  return defineHandler({
    description: DESCRIPTIONS[op],
    params: Type.Object({ rg: ResourceGroupName, name: VmName }, { additionalProperties: false }),
    async run(ctx) {
      const { compute, subscriptionId, pollIntervalMs } = ctx.clients;
      const { rg, name } = ctx.params;
      const id = vmId(subscriptionId, rg, name);
      const action = vmAction(ctx.clients, `${VERBS[op]} virtual machine ${name} in resource group ${rg}`, rg, name);
      const options = { ...callOptions(ctx.signal), updateIntervalInMs: pollIntervalMs };
      const vms = compute.virtualMachines;
      const poller =
        op === 'start'
          ? vms.start(rg, name, options)
          : op === 'stop'
            ? vms.powerOff(rg, name, options)
            : op === 'restart'
              ? vms.restart(rg, name, options)
              : op === 'deallocate'
                ? vms.deallocate(rg, name, options)
                : vms.delete(rg, name, options);
      ctx.sink.line(`${VERBS[op]} ${rg}/${name}...`);
      await runLro(poller, { sink: ctx.sink, signal: ctx.signal, action, operation: op, id });
      if (op === 'delete') {
        ctx.sink.line(`${rg}/${name} deleted`);
        return { id, name, resourceGroup: rg, operation: op, provisioningState: 'Deleted' };
      }
      // The power operation succeeded; its new state comes from the instance view.
      let state: VmStatuses = { powerState: null, provisioningState: null };
      try {
        state = statusesOf((await vms.instanceView(rg, name, callOptions(ctx.signal))).statuses);
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        ctx.log.warn({ err: (err as Error).message, vm: id }, 'azure: instance view after a power operation failed');
      }
      ctx.sink.line(`${rg}/${name}: ${op} succeeded${state.powerState ? `, power state ${state.powerState}` : ''}`);
      return { id, name, resourceGroup: rg, operation: op, provisioningState: 'Succeeded', powerState: state.powerState };
    },
  });
}

export const startVm = powerHandler('start');
export const stopVm = powerHandler('stop');
export const restartVm = powerHandler('restart');
export const deallocateVm = powerHandler('deallocate');
export const deleteVm = powerHandler('delete');

/** The stdout/stderr sections of a run-command result (Linux: one message with [stdout]/[stderr]; Windows: two statuses). */
export function splitRunCommandOutput(statuses: Array<{ code?: string; message?: string }>): { stdout: string; stderr: string; failed: boolean } {
  let stdout = '';
  let stderr = '';
  let failed = false;
  for (const s of statuses) {
    const code = s.code ?? '';
    const message = s.message ?? '';
    if (/StdOut/i.test(code)) stdout += message;
    else if (/StdErr/i.test(code)) stderr += message;
    else {
      const m = /^([\s\S]*?)\[stdout\]\n?([\s\S]*?)(?:\n?\[stderr\]\n?([\s\S]*))?$/.exec(message);
      if (m) {
        if (/Enable failed/i.test(m[1] ?? '')) failed = true;
        stdout += m[2] ?? '';
        stderr += m[3] ?? '';
      } else {
        stdout += message;
      }
    }
    if (/\/failed$/i.test(code)) failed = true;
  }
  return { stdout, stderr, failed };
}

/** Lines of a script's output, without the empty line its final newline would add. */
function outputLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split(/\r\n|\r|\n/);
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** POST azure/vms/run-command?rg=&name=&script= */
export const runCommand = defineHandler({
  description:
    'Run a shell script inside a virtual machine through the VM agent (`script`, or the request body when `script` is absent). Progress events while it runs; ARM returns the output when it has finished.',
  params: Type.Object(
    {
      rg: ResourceGroupName,
      name: VmName,
      script: Type.Optional(Type.String({ minLength: 1, maxLength: 262144, description: 'the script; the request body is used when absent' })),
      command_id: Type.Optional(
        Type.Union([Type.Literal('RunShellScript'), Type.Literal('RunPowerShellScript')], {
          description: 'RunShellScript (Linux, default) or RunPowerShellScript (Windows)',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  async run(ctx) {
    const { compute, subscriptionId, pollIntervalMs } = ctx.clients;
    const { rg, name } = ctx.params;
    const script = ctx.params.script ?? ctx.body.toString('utf8');
    if (script.trim() === '') {
      throw new AppError(400, 'bad_parameter', 'run-command needs a script: pass `script`, or send it as the request body');
    }
    const id = vmId(subscriptionId, rg, name);
    const action = vmAction(ctx.clients, `run a command in virtual machine ${name} in resource group ${rg}`, rg, name);
    const commandId = ctx.params.command_id ?? 'RunShellScript';
    ctx.sink.line(`running ${commandId} in ${rg}/${name}...`);
    const poller = compute.virtualMachines.runCommand(
      rg,
      name,
      { commandId, script: script.replace(/(?:\r\n|\r|\n)$/, '').split(/\r\n|\r|\n/) },
      { ...callOptions(ctx.signal), updateIntervalInMs: pollIntervalMs },
    );
    const result = await runLro(poller, { sink: ctx.sink, signal: ctx.signal, action, operation: 'run-command', id });
    const statuses = (result?.value ?? []).map((s) => ({ code: s.code ?? null, message: s.message ?? '' }));
    const { stdout, stderr, failed } = splitRunCommandOutput(statuses.map((s) => ({ code: s.code ?? undefined, message: s.message })));
    for (const line of outputLines(stdout)) ctx.sink.line(line);
    if (stderr.trim() !== '') {
      ctx.sink.line('[stderr]');
      for (const line of outputLines(stderr)) ctx.sink.line(line);
    }
    const output = { id, name, resourceGroup: rg, provisioningState: 'Succeeded', commandId, stdout, stderr, statuses };
    if (failed) {
      throw new AppError(500, 'script_failed', `the script failed inside ${rg}/${name}`, output);
    }
    return output;
  },
});
