// The README's settings table is the settings table of server/config/settings.ts, rendered: a
// setting added, renamed or re-described there can't leave the README behind.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { settingsTable } from '../../server/config/index.ts';

test('README.md carries the settings table exactly as settings.ts renders it', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
  const expected = settingsTable();
  assert.ok(readme.includes(`\n${expected}\n`), `README.md's settings table differs from settings.ts; replace it with:\n\n${expected}\n`);
});
