// Password checks past ARMHOOK_AUTH_QUEUE are refused at once with a 503 JSON error and
// Retry-After; health checks and recently verified credentials are answered all the same.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertJsonError, assertNothingRan, fetchText, listJobs, markerLine, startServer } from '../helpers/server.ts';

test('guesses past the auth queue get 503 auth_busy with Retry-After, nothing runs; /healthz and cached credentials still work', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'armhook-auth-busy-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'htpasswd');
  execFileSync('htpasswd', ['-cbB', '-C', '4', file, 'alice', 'pw-alice'], { stdio: 'ignore' });
  // Cost 13: a check that is still running while the other guesses arrive.
  execFileSync('htpasswd', ['-bB', '-C', '13', file, 'slow', 'pw-slow'], { stdio: 'ignore' });
  const server = await startServer({
    config: { htpasswd: file, authThreads: 1, authQueue: 1 },
    scripts: { 'guarded.sh': `#!/bin/sh\n${markerLine('guarded')}\n` },
  });
  t.after(() => server.close());
  const alice = 'alice:pw-alice';
  const before = (await listJobs(server, { auth: alice })).length;

  const guesses = await Promise.all(['g1', 'g2', 'g3', 'g4', 'g5'].map((pw) => fetchText(server, '/guarded', { method: 'POST', auth: `slow:${pw}` })));
  const busy = guesses.filter((r) => r.status === 503);
  assert.ok(busy.length >= 3, `most guesses are refused at once: ${guesses.map((r) => r.status).join(', ')}`);
  assert.ok(
    guesses.every((r) => r.status === 503 || r.status === 401),
    guesses.map((r) => r.status).join(', '),
  );
  for (const res of busy) {
    assertJsonError(res, 503, 'auth_busy');
    assert.equal(res.headers['retry-after'], '1');
    assert.equal(res.headers['www-authenticate'], undefined, 'not a credentials problem');
  }
  await assertNothingRan(server, 'guarded', before, alice);

  // Fill the queue again; what needs no check is answered while it is full.
  const slowGuess = fetchText(server, '/guarded', { method: 'POST', auth: 'slow:g6' });
  const [health, cached, extra] = await Promise.all([
    fetchText(server, '/healthz'),
    fetchText(server, '/hooks', { auth: alice }),
    fetchText(server, '/hooks', { auth: 'slow:g7' }),
  ]);
  assert.equal(health.status, 200);
  assert.equal(cached.status, 200, cached.body);
  assert.ok([401, 503].includes(extra.status));
  assert.ok([401, 503].includes((await slowGuess).status));
});
