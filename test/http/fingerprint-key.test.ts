// The installation's idempotency key file: created 0600 at the first start, the same key at every
// later one, replaced (with a warning) when it does not hold a key.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FINGERPRINT_KEY_FILE, loadFingerprintKey } from '../../server/http/index.ts';
import { captureLog, LEVEL } from '../helpers/log.ts';

test('the key file is created 0600 once and read back at every later start; a file that holds no key is replaced with a warning', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'armhook-fingerprint-key-'));
  try {
    const file = join(dir, FINGERPRINT_KEY_FILE);
    const first = await loadFingerprintKey(dir, captureLog().log);
    assert.equal(first.length, 32);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await readFile(file, 'utf8')).trim(), first.toString('hex'));
    assert.deepEqual(await loadFingerprintKey(dir, captureLog().log), first);

    await writeFile(file, 'not a key\n');
    const warned = captureLog();
    const replaced = await loadFingerprintKey(dir, warned.log);
    assert.notDeepEqual(replaced, first);
    assert.ok(warned.lines().some((l) => l.level === LEVEL.warn && /replaced/.test(l.msg)));
    assert.deepEqual(await loadFingerprintKey(dir, captureLog().log), replaced);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
