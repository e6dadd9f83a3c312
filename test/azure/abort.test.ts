// Cancelling or timing out a job stops the LRO polling: the handler rejects with `aborted` (what
// may still be running in Azure), and the ARM fake sees no request after that.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startAzureEnv, type AzureEnv } from './setup.ts';

let env: AzureEnv;

before(async () => {
  // Async operations never finish on their own in this file.
  env = await startAzureEnv({ arm: { inProgressPolls: 1_000_000 } });
  env.arm.addGroup('ops-rg');
});
after(async () => {
  await env?.close();
});

describe('abort during a long-running operation', () => {
  for (const op of ['start', 'stop', 'restart', 'deallocate', 'delete', 'run-command'] as const) {
    test(`${op}: stops polling after the abort`, async () => {
      const name = `held-${op}`;
      env.arm.addVm('ops-rg', name, { powerState: op === 'start' ? 'deallocated' : 'running' });
      const controller = new AbortController();
      const from = env.arm.requests.length;
      let polls = 0;
      const { error, progress } = await env.runFailing(
        `azure/vms/${op}`,
        { rg: 'ops-rg', name, ...(op === 'run-command' ? { script: 'sleep 3600' } : {}) },
        {
          signal: controller.signal,
          onEvent: (e) => {
            // Abort after the third InProgress poll.
            if (e.kind === 'progress' && e.data['status'] === 'running' && ++polls === 3) controller.abort(new Error('job cancelled by alice'));
          },
        },
      );
      const settledAt = env.arm.requests.length;
      assert.equal(error.code, 'aborted');
      assert.equal(error.status, 409);
      assert.equal(error.details?.['mayStillBeRunning'], true);
      assert.match(error.message, /may still be running in Azure/);
      assert.match(error.message, /job cancelled by alice/);
      assert.equal(progress.filter((p) => p['status'] === 'running').length, 3);
      assert.ok(!progress.some((p) => p['status'] === 'succeeded'));
      await env.assertQuietAfter(from, settledAt, [name]);
    });
  }

  test('resource group delete: stops polling after the abort (timeout reason)', async () => {
    env.arm.addGroup('slow-rg');
    const from = env.arm.requests.length;
    const controller = new AbortController();
    const { error } = await env.runFailing(
      'azure/groups/delete',
      { name: 'slow-rg' },
      {
        signal: controller.signal,
        onEvent: (e) => {
          if (e.kind === 'progress' && e.data['status'] === 'running') controller.abort(new Error('timed out after 60 s'));
        },
      },
    );
    const settledAt = env.arm.requests.length;
    assert.equal(error.code, 'aborted');
    assert.match(error.message, /delete resource group slow-rg/);
    assert.match(error.message, /timed out after 60 s/);
    assert.equal(env.arm.groups.has('slow-rg'), true, 'the fake never completed it');
    await env.assertQuietAfter(from, settledAt, ['slow-rg']);
  });

  test('an already aborted job sends nothing to ARM', async () => {
    env.arm.addVm('ops-rg', 'untouched', { powerState: 'running' });
    const before = env.arm.requests.length;
    const { error } = await env.runFailing('azure/vms/restart', { rg: 'ops-rg', name: 'untouched' }, { signal: AbortSignal.abort(new Error('cancelled')) });
    assert.equal(error.code, 'aborted');
    await env.assertQuietAfter(before, before, ['untouched']);
  });
});
