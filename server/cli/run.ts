import { applyDeclarations, buildScriptEnvironment, HookCatalog, maskedParams, runScript, secretValues } from '../hooks/index.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/index.ts';
import type { Logger } from '../log/index.ts';
import { RequestError } from '../errors.ts';

/**
 * `armhook run <hook> [name=value ...]`: the same catalog, parameter rules and environment as the
 * server, output straight to this terminal, exit code passed through. No job is recorded.
 */
export async function runLocal(config: Config, log: Logger, args: string[]): Promise<number> {
  const [path, ...pairs] = args;
  if (!path) {
    process.stderr.write('usage: armhook run <hook> [name=value ...]\n');
    return 2;
  }
  const catalog = new HookCatalog({ scriptsDir: config.scriptsDir, log });
  try {
    const hook = await catalog.resolve(path.replace(/^\//, ''));
    if (!hook) {
      process.stderr.write(`armhook: no hook "${path}" under ${config.scriptsDir}; \`armhook hooks\` lists them\n`);
      return 2;
    }
    const query = new URLSearchParams();
    for (const pair of pairs) {
      const eq = pair.indexOf('=');
      if (eq <= 0) {
        process.stderr.write(`armhook: "${pair}" is not name=value\n`);
        return 2;
      }
      query.append(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const { collectParams } = await import('../hooks/index.ts');
    const params = applyDeclarations(collectParams(query.toString(), undefined, Buffer.alloc(0)), hook.header.params, hook.path);
    const stdin = process.stdin.isTTY ? Buffer.alloc(0) : await readAll(process.stdin);
    const azureConfigDir = await mkdtemp(join(tmpdir(), 'armhook-az-'));
    const controller = new AbortController();
    const onSignal = (): void => controller.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const jobId = `local-${randomUUID()}`;
      log.debug({ hook: hook.path, params: maskedParams(params, hook.header.params) }, 'running locally');
      const secrets = secretValues(params, hook.header.params);
      const mask = (chunk: Buffer): Buffer => {
        if (secrets.length === 0) return chunk;
        let text = chunk.toString('utf8');
        for (const secret of secrets) text = text.replaceAll(secret, '***');
        return Buffer.from(text);
      };
      const result = await runScript({
        file: hook.file,
        cwd: dirname(hook.file),
        env: buildScriptEnvironment({
          inherit: process.env,
          params,
          context: { jobId, hook: hook.path, user: userInfo().username, method: 'RUN' },
          azure: {},
          azureConfigDir,
        }),
        stdin,
        signal: controller.signal,
        killGraceMs: config.killGrace * 1000,
        onStart: () => undefined,
        onOutput: (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(mask(chunk)),
      });
      if (result.startError) {
        process.stderr.write(`armhook: could not start ${hook.path}: ${result.startError}\n`);
        return 126;
      }
      return result.exitCode ?? 128 + 15;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await rm(azureConfigDir, { recursive: true, force: true });
    }
  } catch (err) {
    if (err instanceof RequestError) {
      process.stderr.write(`armhook: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
