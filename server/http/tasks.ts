import { mkdirSync, rmdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { buildScriptEnvironment, type ScriptHook, type ScriptRunOptions, type ScriptRunResult } from '../hooks/index.ts';
import type { Task } from '../jobs/index.ts';

export interface ScriptTaskOptions {
  hook: ScriptHook;
  params: Map<string, string>;
  body: Buffer;
  user: string;
  method: string;
  killGraceMs: number;
  /** Instance-metadata variables (AZURE_SUBSCRIPTION_ID...), read when the job starts. */
  azureEnv: () => Record<string, string>;
  inheritEnv: NodeJS.ProcessEnv;
  /** A private (0700) directory of this process for per-job scratch space (see app.ts). */
  scratchDir: string;
  /** How the script starts: the spawn helper, or execa from this process. */
  spawn: (options: ScriptRunOptions) => Promise<ScriptRunResult>;
}

/** A script run as a job task: a private AZURE_CONFIG_DIR (0700, removed after), its process group recorded. */
export function scriptTask(options: ScriptTaskOptions): Task {
  return async (context) => {
    // Mode 0700 inside a 0700 directory, outside the data dir: az's token cache never lands in
    // job storage, and concurrent az runs never share one.
    // Synchronous on purpose: the scratch directory is on a memory filesystem (see app.ts), where
    // mkdir+rmdir cost ~13 µs of CPU in place and 3-5× that as promises through the thread pool.
    const azureConfigDir = join(options.scratchDir, `az-${context.jobId}`);
    mkdirSync(azureConfigDir, { mode: 0o700 });
    try {
      const env = buildScriptEnvironment({
        inherit: options.inheritEnv,
        params: options.params,
        context: { jobId: context.jobId, hook: options.hook.path, user: options.user, method: options.method },
        azure: options.azureEnv(),
        azureConfigDir,
      });
      const result = await options.spawn({
        file: options.hook.file,
        cwd: dirname(options.hook.file),
        env,
        stdin: options.body,
        signal: context.signal,
        killGraceMs: options.killGraceMs,
        onStart: (pid) => context.setProcessGroup(pid),
        onOutput: (stream, chunk) => context.output.chunk(stream, chunk),
      });
      if (result.startError !== undefined) {
        const message = `could not start ${options.hook.path}: ${result.startError}. Check its #! line and that it is executable.`;
        context.output.line(`armhook: ${message}`, 'stderr');
        return { ok: false, exitCode: null, error: { code: 'start_failed', message } };
      }
      if (result.exitCode === 0) return { ok: true, exitCode: 0 };
      if (result.signal !== null && result.exitCode === null) {
        return { ok: false, exitCode: null, error: { code: 'killed', message: `the script was killed by ${result.signal}` } };
      }
      return { ok: false, exitCode: result.exitCode, error: { code: 'exit_code', message: `the script exited with code ${result.exitCode}` } };
    } finally {
      // Usually empty (az's token cache when not): try the one-call removal first.
      // A cleanup problem never changes the job's result.
      try {
        rmdirSync(azureConfigDir);
      } catch {
        await rm(azureConfigDir, { recursive: true, force: true }).catch(() => undefined);
      }
    }
  };
}
