import { applyDeclarations, buildScriptEnvironment, HookCatalog, maskedParams, runScript, secretValues } from '../hooks/index.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/index.ts';
import type { Logger } from '../log/index.ts';
import { AppError } from '../errors.ts';
import { LineSplitter, SecretMasker } from '../jobs/index.ts';

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
      // Secrets are masked line by line, as in the server (a chunk boundary can split a secret).
      const masker = new SecretMasker(secretValues(params, hook.header.params));
      const splitters = { stdout: new LineSplitter(), stderr: new LineSplitter() };
      const write = (stream: 'stdout' | 'stderr', lines: string[]): void => {
        if (lines.length > 0) (stream === 'stdout' ? process.stdout : process.stderr).write(lines.map((l) => `${masker.mask(l)}\n`).join(''));
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
        onOutput: (stream, chunk) => write(stream, splitters[stream].push(chunk)),
      });
      write('stdout', splitters.stdout.end());
      write('stderr', splitters.stderr.end());
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
    if (err instanceof AppError) {
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
