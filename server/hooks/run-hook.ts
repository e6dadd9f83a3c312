import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { removeConfigDir, type AzSetup } from './az-setup.ts';
import type { ScriptHook } from './catalog.ts';
import { buildScriptEnvironment } from './environment.ts';
import type { OutputStream, ScriptRunOptions, ScriptRunResult } from './runner.ts';

export interface HookRunOptions {
  hook: ScriptHook;
  params: Map<string, string>;
  body: Buffer;
  /** ARMHOOK_JOB_ID; also names the run's scratch directory. */
  jobId: string;
  user: string;
  method: string;
  /** Instance-metadata variables (AZURE_SUBSCRIPTION_ID...), as known when the run starts. */
  azureEnv: Record<string, string>;
  inheritEnv: NodeJS.ProcessEnv;
  /** Variables from armhook's settings, and what goes into each AZURE_CONFIG_DIR. */
  az: AzSetup;
  /** A private (0700) directory for per-run scratch space; the run's AZURE_CONFIG_DIR goes inside. */
  scratchDir: string;
  killGraceMs: number;
  signal: AbortSignal;
  /** How the script starts: the spawn helper, or execa from this process. */
  spawn: (options: ScriptRunOptions) => Promise<ScriptRunResult>;
  onStart: (pid: number) => void;
  onOutput: (stream: OutputStream, chunk: Buffer) => void;
}

/** How a run ended, in the job record's terms. */
export interface HookOutcome {
  ok: boolean;
  exitCode: number | null;
  error?: { code: 'start_failed' | 'az_config_failed' | 'killed' | 'exit_code'; message: string };
}

/**
 * Runs a script hook once: environment from its parameters and armhook's settings, a private
 * AZURE_CONFIG_DIR (0700, filled from the az set-up, removed after), output streamed to `onOutput`. The server's jobs and `armhook run` both use it.
 */
export async function runHook(options: HookRunOptions): Promise<HookOutcome> {
  // Mode 0700 inside a 0700 directory, outside the data dir: az's token cache never lands in
  // job storage, and concurrent az runs never share one.
  // Synchronous on purpose: the scratch directory is on a memory filesystem (see app.ts), where
  // mkdir+rmdir cost far less CPU in place than as promises through the thread pool.
  const azureConfigDir = join(options.scratchDir, `az-${options.jobId}`);
  mkdirSync(azureConfigDir, { mode: 0o700 });
  try {
    try {
      options.az.prepareConfigDir(azureConfigDir);
    } catch (err) {
      const message = `could not prepare the run's AZURE_CONFIG_DIR (${(err as Error).message}); check ARMHOOK_AZ_CONFIG_TEMPLATE. The script did not run.`;
      return { ok: false, exitCode: null, error: { code: 'az_config_failed', message } };
    }
    const env = buildScriptEnvironment({
      inherit: options.inheritEnv,
      shared: options.az.env,
      params: options.params,
      context: { jobId: options.jobId, hook: options.hook.path, user: options.user, method: options.method },
      azure: options.azureEnv,
      azureConfigDir,
    });
    const result = await options.spawn({
      file: options.hook.file,
      cwd: dirname(options.hook.file),
      env,
      stdin: options.body,
      signal: options.signal,
      killGraceMs: options.killGraceMs,
      onStart: options.onStart,
      onOutput: options.onOutput,
    });
    return outcomeOf(options.hook.path, result);
  } finally {
    // A cleanup problem never changes the run's result.
    await removeConfigDir(azureConfigDir).catch(() => undefined);
  }
}

function outcomeOf(path: string, result: ScriptRunResult): HookOutcome {
  if (result.startError !== undefined) {
    return {
      ok: false,
      exitCode: null,
      error: { code: 'start_failed', message: `could not start ${path}: ${result.startError}. Check its #! line and that it is executable.` },
    };
  }
  if (result.exitCode === 0) return { ok: true, exitCode: 0 };
  if (result.signal !== null && result.exitCode === null) {
    return { ok: false, exitCode: null, error: { code: 'killed', message: `the script was killed by ${result.signal}` } };
  }
  return { ok: false, exitCode: result.exitCode, error: { code: 'exit_code', message: `the script exited with code ${result.exitCode}` } };
}
