import { runHook, type HookRunOptions } from '../hooks/index.ts';
import type { Task } from '../jobs/index.ts';

export type ScriptTaskOptions = Omit<HookRunOptions, 'jobId' | 'azureEnv' | 'signal' | 'onStart' | 'onOutput'> & {
  /** Instance-metadata variables (AZURE_SUBSCRIPTION_ID...), read when the job starts. */
  azureEnv: () => Record<string, string>;
};

/** A script run as a job task: its process group recorded, its output into the job's log. */
export function scriptTask(options: ScriptTaskOptions): Task {
  return async (context) => {
    const outcome = await runHook({
      ...options,
      jobId: context.jobId,
      azureEnv: options.azureEnv(),
      signal: context.signal,
      onStart: (pid) => context.setProcessGroup(pid),
      onOutput: (stream, chunk) => context.output.chunk(stream, chunk),
    });
    if (outcome.error?.code === 'start_failed' || outcome.error?.code === 'az_config_failed')
      context.output.line(`armhook: ${outcome.error.message}`, 'stderr');
    return outcome;
  };
}
