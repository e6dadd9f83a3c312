// Failed authentications are limited per source address: after 10 in a minute that address gets
// 429 with Retry-After (even with the right password), other addresses are served, a success does
// not reset the count, and X-Forwarded-For counts only when the socket is a trusted proxy.
// Clients bind to other loopback addresses (127.0.0.2, …) to be other sources.
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { hashPassword } from '../../server/auth/passwd.ts';
import { markerExists, startServer, type TestServer } from '../helpers/server.ts';

let dir: string;
let server: TestServer;
let proxied: TestServer;

const RIGHT = 'api:right-password';
const WRONG = 'api:wrong-password';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'armhook-bruteforce-'));
  const htpasswd = join(dir, 'htpasswd');
  await writeFile(htpasswd, `api:${await hashPassword('right-password', 4)}\n`);
  const scripts = { 'hello.sh': '#!/bin/sh\ntouch "$ARMHOOK_TEST_MARKERS/hello-$tag"\necho hello\n' };
  server = await startServer({ config: { htpasswd }, scripts, failureLimit: 'product' });
  proxied = await startServer({ config: { htpasswd, trustProxy: '127.0.0.1' }, scripts, failureLimit: 'product' });
});

after(async () => {
  await server.close();
  await proxied.close();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  retryAfter: string | undefined;
}

function post(target: TestServer, from: string, credentials: string, tag: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${target.url.replace('localhost', '127.0.0.1')}/hello?tag=${tag}`,
      {
        method: 'POST',
        ca: target.ca,
        servername: 'localhost',
        localAddress: from,
        auth: credentials,
        headers: { accept: 'application/json', ...headers },
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('100 wrong passwords from one address: 10 are answered 401, the rest 429 with Retry-After; meanwhile 127.0.0.2 is served', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 100; i++) {
    const answer = await post(server, '127.0.0.1', WRONG, `attack${i}`);
    statuses.push(answer.status);
    if (answer.status === 429) {
      const seconds = Number(answer.retryAfter);
      assert.ok(Number.isInteger(seconds) && seconds >= 1 && seconds <= 60, `Retry-After ${answer.retryAfter}`);
    }
    if (i === 50) assert.equal((await post(server, '127.0.0.2', RIGHT, 'other')).status, 200, 'another address is served during the attack');
  }
  assert.deepEqual(statuses.slice(0, 10), Array(10).fill(401));
  assert.deepEqual(statuses.slice(10), Array(90).fill(429));
  assert.ok(markerExists(server, 'hello-other'));

  const blocked = await post(server, '127.0.0.1', RIGHT, 'blocked');
  assert.equal(blocked.status, 429, 'the right password from a blocked address is not even tried');
  assert.ok(!markerExists(server, 'hello-blocked'));
  assert.equal((await post(server, '127.0.0.2', WRONG, 'x')).status, 401, '127.0.0.2 has its own count');

  const throttled = server.logs.entries().filter((l) => l.audit === 'auth-throttled');
  assert.ok(throttled.length >= 90 && throttled.every((l) => l.source === '127.0.0.1'));
  assert.ok(!server.logs.text().includes('wrong-password') && !server.logs.text().includes('right-password'));
});

test("a success does not reset an attacker's count", async () => {
  for (let i = 0; i < 9; i++) assert.equal((await post(server, '127.0.0.3', WRONG, `w${i}`)).status, 401);
  assert.equal((await post(server, '127.0.0.3', RIGHT, 'between')).status, 200);
  assert.equal((await post(server, '127.0.0.3', WRONG, 'tenth')).status, 401);
  assert.equal((await post(server, '127.0.0.3', RIGHT, 'after')).status, 429);
});

test('X-Forwarded-For is ignored from a socket that is not a trusted proxy', async () => {
  for (let i = 0; i < 10; i++) assert.equal((await post(server, '127.0.0.4', WRONG, `xff${i}`, { 'x-forwarded-for': `198.51.100.${i}` })).status, 401);
  assert.equal((await post(server, '127.0.0.4', RIGHT, 'xff', { 'x-forwarded-for': '198.51.100.200' })).status, 429);
});

test('behind a trusted proxy (ARMHOOK_TRUST_PROXY) each forwarded client has its own count, and the audit line names it', async () => {
  for (let i = 0; i < 10; i++) assert.equal((await post(proxied, '127.0.0.1', WRONG, `p${i}`, { 'x-forwarded-for': '198.51.100.7' })).status, 401);
  assert.equal((await post(proxied, '127.0.0.1', RIGHT, 'p-blocked', { 'x-forwarded-for': '198.51.100.7' })).status, 429);
  assert.equal((await post(proxied, '127.0.0.1', RIGHT, 'p-other', { 'x-forwarded-for': '198.51.100.8' })).status, 200);
  const failures = proxied.logs.entries().filter((l) => l.audit === 'auth-failed');
  assert.ok(failures.length === 10 && failures.every((l) => l.source === '198.51.100.7'), JSON.stringify(failures.map((l) => l.source)));
});
