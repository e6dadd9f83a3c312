import { Type } from '@sinclair/typebox';
import { toHandlerError } from '../errors.ts';
import { runLro } from '../lro.ts';
import { Location, ResourceGroupName, callOptions, groupId } from './common.ts';
import { defineHandler } from '../handler.ts';

const subscriptionScope = (sub: string): string => `/subscriptions/${sub}`;

/** GET azure/groups */
export const listGroups = defineHandler({
  description: 'List the resource groups of the subscription (name, location, provisioning state).',
  params: Type.Object({}, { additionalProperties: false }),
  async run(ctx) {
    const { resources, subscriptionId } = ctx.clients;
    const groups: Array<{ id: string | null; name: string | null; location: string; provisioningState: string | null; tags: Record<string, string> }> = [];
    try {
      for await (const g of resources.resourceGroups.list(callOptions(ctx.signal))) {
        groups.push({
          id: g.id ?? null,
          name: g.name ?? null,
          location: g.location,
          provisioningState: g.properties?.provisioningState ?? null,
          tags: g.tags ?? {},
        });
      }
    } catch (err) {
      throw toHandlerError(err, {
        what: 'list resource groups',
        resource: `subscription ${subscriptionId}`,
        scope: subscriptionScope(subscriptionId),
        role: 'Reader',
        principalId: ctx.clients.identity()?.principalId,
        maxRetries: ctx.clients.maxRetries,
      });
    }
    for (const g of groups) ctx.sink.line(`${g.name}\t${g.location}\t${g.provisioningState ?? ''}`);
    return { subscriptionId, count: groups.length, groups };
  },
});

/** POST azure/groups/create?name=&location= */
export const createGroup = defineHandler({
  description: "Create a resource group, or update it when it exists (location defaults to the VM's).",
  params: Type.Object({ name: ResourceGroupName, location: Type.Optional(Location) }, { additionalProperties: false }),
  async run(ctx) {
    const { resources, subscriptionId, metadata } = ctx.clients;
    const { name } = ctx.params;
    const location = ctx.params.location ?? metadata.location;
    let httpStatus: number | undefined;
    try {
      const g = await resources.resourceGroups.createOrUpdate(
        name,
        { location },
        {
          ...callOptions(ctx.signal),
          onResponse: (r) => {
            httpStatus = r.status;
          },
        },
      );
      const created = httpStatus === 201;
      ctx.sink.line(`resource group ${name} ${created ? 'created' : 'updated'} in ${g.location}`);
      return {
        id: g.id ?? groupId(subscriptionId, name),
        name: g.name ?? name,
        location: g.location,
        provisioningState: g.properties?.provisioningState ?? 'Succeeded',
        created,
      };
    } catch (err) {
      throw toHandlerError(err, {
        what: `create resource group ${name} in ${location}`,
        resource: `resource group ${name}`,
        // A group that does not exist yet cannot be a scope: the grant goes on the subscription.
        scope: subscriptionScope(subscriptionId),
        role: 'Contributor',
        principalId: ctx.clients.identity()?.principalId,
        maxRetries: ctx.clients.maxRetries,
      });
    }
  },
});

/** POST azure/groups/delete?name= (long-running) */
export const deleteGroup = defineHandler({
  description: 'Delete a resource group and everything in it (long-running; progress events while Azure deletes).',
  params: Type.Object({ name: ResourceGroupName }, { additionalProperties: false }),
  async run(ctx) {
    const { resources, subscriptionId, pollIntervalMs } = ctx.clients;
    const { name } = ctx.params;
    const id = groupId(subscriptionId, name);
    const action = {
      what: `delete resource group ${name}`,
      resource: `resource group ${name}`,
      scope: id,
      role: 'Contributor',
      principalId: ctx.clients.identity()?.principalId,
      maxRetries: ctx.clients.maxRetries,
    };
    ctx.sink.line(`deleting resource group ${name}...`);
    const poller = resources.resourceGroups.delete(name, { ...callOptions(ctx.signal), updateIntervalInMs: pollIntervalMs });
    await runLro(poller, { sink: ctx.sink, signal: ctx.signal, action, operation: 'delete', id });
    ctx.sink.line(`resource group ${name} deleted`);
    return { id, name, provisioningState: 'Deleted' };
  },
});
