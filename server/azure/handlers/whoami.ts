import { Type } from '@sinclair/typebox';
import { defineHandler } from '../handler.ts';

/** GET azure/whoami — the identity armhook acts as, and where it runs. No ARM call. */
export const whoami = defineHandler({
  description:
    "The managed identity armhook uses (principal/object id, tenant, client id, from the token's claims) and the VM it runs on (subscription, resource group, location, name, from instance metadata).",
  params: Type.Object({}, { additionalProperties: false }),
  async run(ctx) {
    const identity = await ctx.clients.currentIdentity(ctx.signal);
    const m = ctx.clients.metadata;
    const result = {
      principalId: identity.principalId ?? null,
      tenantId: identity.tenantId ?? null,
      clientId: identity.clientId ?? null,
      identityType: identity.identityType,
      managedIdentityResourceId: identity.managedIdentityResourceId ?? null,
      subscriptionId: m.subscriptionId,
      resourceGroup: m.resourceGroup,
      location: m.location,
      vmName: m.vmName,
      vmId: m.vmId ?? null,
      armEndpoint: ctx.clients.armEndpoint,
    };
    ctx.sink.line(`identity: ${identity.identityType} managed identity`);
    ctx.sink.line(`principal id: ${result.principalId ?? 'unknown'}`);
    ctx.sink.line(`tenant id: ${result.tenantId ?? 'unknown'}`);
    ctx.sink.line(`client id: ${result.clientId ?? 'unknown'}`);
    ctx.sink.line(`subscription: ${m.subscriptionId}`);
    ctx.sink.line(`resource group: ${m.resourceGroup}`);
    ctx.sink.line(`location: ${m.location}`);
    ctx.sink.line(`vm: ${m.vmName}`);
    return result;
  },
});
