/**
 * Running one ARM long-running operation: progress events while polling, the job's abort signal
 * stops the polling (and any request in flight), errors mapped for the caller.
 */
import type { HandlerSink } from './handler.ts';
import { abortedError, toHandlerError, type ArmAction } from './errors.ts';

/** The part of @azure/core-lro's PollerLike that armhook uses (structural, so no import of the SDK). */
export interface LroPoller<T> {
  readonly operationState: { status: string } | undefined;
  onProgress(callback: (state: { status: string }) => void): () => void;
  submitted(): Promise<void>;
  pollUntilDone(options?: { abortSignal?: AbortSignal }): Promise<T>;
}

export interface LroRun {
  sink: HandlerSink;
  signal: AbortSignal;
  action: ArmAction;
  /** Short name for progress events: "start", "delete", "run-command"... */
  operation: string;
  /** Resource id the progress events carry. */
  id: string;
}

/**
 * Waits for the operation, emitting `{operation, id, status, polls}` progress events: one when ARM
 * accepted the request, one after every poll. Returns the operation's result.
 */
export async function runLro<T>(poller: LroPoller<T>, run: LroRun): Promise<T> {
  let polls = 0;
  const stop = poller.onProgress((state) => {
    polls += 1;
    run.sink.progress({ operation: run.operation, id: run.id, status: state.status, polls });
  });
  try {
    await poller.submitted();
    const status = poller.operationState?.status ?? 'running';
    run.sink.progress({ operation: run.operation, id: run.id, status: status === 'running' ? 'accepted' : status, polls });
    return await poller.pollUntilDone({ abortSignal: run.signal });
  } catch (err) {
    if (run.signal.aborted) throw abortedError(run.action, { id: run.id, operation: run.operation }, run.signal);
    throw toHandlerError(err, run.action);
  } finally {
    stop();
  }
}
