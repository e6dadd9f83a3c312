// A typed handler's progress events: secret values are masked in every string of the event,
// also when JSON would escape them (a secret holding `"` or `\`), and the event stays JSON.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobLog } from '../../server/jobs/index.ts';
import { JobOutput } from '../../server/jobs/output.ts';

function capture(): { log: JobLog; events: Array<{ event: string; data: string }> } {
  const events: Array<{ event: string; data: string }> = [];
  const log = { append: (items: ReadonlyArray<{ event: string; data: string }>) => events.push(...items) } as unknown as JobLog;
  return { log, events };
}

test('a secret with a quote, a backslash or a line break is masked in a progress event, nested or not; the event stays valid JSON', () => {
  const secrets = ['pa"ss\\word', 'tab\there', 'two\nlines'];
  const { log, events } = capture();
  const output = new JobOutput(log, secrets);
  output.progress({ step: 'login with pa"ss\\word', nested: { list: ['tab\there', 'two\nlines', 42] }, ok: true });
  assert.equal(events.length, 1);
  const { event, data } = events[0] ?? { event: '', data: '' };
  assert.equal(event, 'progress');
  for (const secret of secrets) {
    assert.ok(!data.includes(secret), 'not in the text as it is');
    assert.ok(!data.includes(JSON.stringify(secret).slice(1, -1)), 'not in the text as JSON escapes it');
  }
  assert.deepEqual(JSON.parse(data), { step: 'login with ***', nested: { list: ['***', '***', 42] }, ok: true });
});

test('progress without secrets is the JSON of the data, access tokens masked', () => {
  const { log, events } = capture();
  new JobOutput(log, []).progress({ step: 'listing', token: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl' });
  const data = JSON.parse(events[0]?.data ?? '{}');
  assert.equal(data.step, 'listing');
  assert.ok(!String(data.token).includes('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0'), data.token);
});
