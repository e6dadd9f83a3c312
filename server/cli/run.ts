import { readArmCaFile } from '../azure/index.ts';
import {
  applyDeclarations,
  azSetupFor,
  azSetupError,
  collectParams,
  HookCatalog,
  maskedParams,
  runHook,
  runScript,
  secretValues,
  type AzSetup,
} from '../hooks/index.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/index.ts';
import type { Logger } from '../log/index.ts';
import { AppError } from '../errors.ts';
import { MaskedLines } from '../jobs/index.ts';

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
    const params = applyDeclarations(collectParams(query.toString(), undefined, Buffer.alloc(0)), hook.header, hook.path);
    const stdin = process.stdin.isTTY ? Buffer.alloc(0) : await readAll(process.stdin);
    const scratchDir = await mkdtemp(join(tmpdir(), 'armhook-run-'));
    const controller = new AbortController();
    const onSignal = (): void => controller.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const az = await localAzSetup(config, scratchDir);
      log.debug({ hook: hook.path, params: maskedParams(params, hook.header.params) }, 'running locally');
      const output = new MaskedLines(secretValues(params, hook.header.params), (stream, lines) => {
        (stream === 'stdout' ? process.stdout : process.stderr).write(lines.map((l) => `${l}\n`).join(''));
      });
      const outcome = await runHook({
        hook,
        params,
        body: stdin,
        jobId: `local-${randomUUID()}`,
        user: userInfo().username,
        method: 'RUN',
        azureEnv: {},
        inheritEnv: process.env,
        az,
        scratchDir,
        killGraceMs: config.killGrace * 1000,
        signal: controller.signal,
        spawn: runScript,
        onStart: () => undefined,
        onOutput: (stream, chunk) => output.chunk(stream, chunk),
      });
      output.flush();
      if (outcome.error?.code === 'start_failed') {
        process.stderr.write(`armhook: ${outcome.error.message}\n`);
        return 126;
      }
      if (outcome.error?.code === 'az_config_failed') {
        process.stderr.write(`armhook: ${outcome.error.message}\n`);
        return 2;
      }
      return outcome.exitCode ?? 128 + 15;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await rm(scratchDir, { recursive: true, force: true });
    }
  } catch (err) {
    if (err instanceof AppError) {
      process.stderr.write(`armhook: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

/** The server's AzSetup, for one local run: the CA bundle goes into the run's scratch directory. */
async function localAzSetup(config: Config, scratchDir: string): Promise<AzSetup> {
  let armCaCert: string | undefined;
  if (config.armCaFile !== undefined) {
    try {
      armCaCert = await readArmCaFile(config.armCaFile);
    } catch (err) {
      throw azSetupError((err as Error).message);
    }
  }
  return azSetupFor(config, armCaCert, scratchDir);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
