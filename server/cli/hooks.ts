import { HookCatalog } from '../hooks/index.ts';
import type { Config } from '../config/index.ts';
import type { Logger } from '../log/index.ts';

/** `armhook hooks`: the catalog, as a table or JSON. */
export async function listHooks(config: Config, log: Logger, json: boolean): Promise<number> {
  const catalog = new HookCatalog({ scriptsDir: config.scriptsDir, log });
  const entries = await catalog.list();
  if (json) {
    process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
    return 0;
  }
  for (const entry of entries) {
    if (entry.kind === 'invalid') {
      process.stdout.write(`POST /${entry.path}  INVALID: ${entry.error}\n`);
      continue;
    }
    process.stdout.write(`POST /${entry.path}  ${entry.header.description}\n`);
    for (const p of entry.header.params ?? []) {
      const flags = [
        p.required ? 'required' : 'optional',
        p.secret ? 'secret' : '',
        p.pattern ? `pattern=${p.pattern}` : '',
        p.default !== undefined && !p.secret ? `default=${p.default}` : '',
      ]
        .filter(Boolean)
        .join(' ');
      process.stdout.write(`    ${p.name}  ${flags}  ${p.description}\n`);
    }
    if (entry.header.params === undefined) process.stdout.write('    (undeclared: any parameter name is accepted)\n');
    else if (entry.header.anyParams) process.stdout.write('    (@params any: other parameter names are accepted too)\n');
  }
  return entries.some((e) => e.kind === 'invalid') ? 1 : 0;
}
