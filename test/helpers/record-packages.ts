// Loaded with --import: on exit, writes to stderr which npm packages the process loaded
// ("packages loaded: a,b,c"), so tests can prove a command stays light.
import { registerHooks } from 'node:module';

const seen = new Set<string>();
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context);
    const name = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(result.url)?.[1];
    if (name) seen.add(name);
    return result;
  },
});
process.on('exit', () => {
  process.stderr.write(`packages loaded: ${[...seen].sort().join(',')}\n`);
});
