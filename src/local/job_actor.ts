/**
 * The Job actor: owns one attempt of one job through a runner. Starts it,
 * watches its progress (a Progress watcher actor of its own, from the
 * attempt's start to its end, with one last look before the end is told),
 * writes its output to the job's log file, enforces the timeout with the
 * injected clock, kills on request, and once the attempt has ended and
 * everything it started is gone, tells its parent how it ended. If the
 * actor itself fails, the attempt is killed and, once it is gone, the
 * parent hears of the failure: a crash is a message, never an uncaught error.
 */

import { type ActorRef, spawnActor, unreachable } from "../_actor.ts";
import { errorMessage } from "./job/outcome.ts";
import { LogFile } from "./job/log_file.ts";
import { type ProgressWatcherMessage, startProgressWatcher } from "./progress_watcher.ts";
import type { AttemptEvent, AttemptHandle, AttemptOutcome, AttemptPlan, KillReason, Runner } from "./runners/runner.ts";
import type { Clock, TimerId } from "./clock.ts";

/** Messages of the Job actor. */
export type JobMessage =
  | { readonly type: "start" }
  | { readonly type: "attempt"; readonly event: AttemptEvent }
  | { readonly type: "kill"; readonly reason: KillReason };

/**
 * How the Job actor reaches its parent. The supervisor implements each as a
 * message to itself, except `output`: a line changes no supervisor state, so
 * it goes straight to the publisher instead of through the supervisor's
 * mailbox (a flood of output must not delay a kill).
 */
export interface JobParent {
  started(ranOn: string): void;
  progress(value: number): void;
  output(stream: "stdout" | "stderr", line: string): void;
  ended(outcome: AttemptOutcome): void;
  crashed(error: unknown): void;
}

/** What the Job actor needs besides its plan. */
export interface JobActorOptions {
  readonly runner: Runner;
  readonly clock: Clock;
  /** A file to append the attempt's output to, or `null`. */
  readonly logFile: string | null;
  readonly parent: JobParent;
}

/** Start the Job actor for `plan`; it begins on its `start` message. */
export function startJobActor(plan: AttemptPlan, options: JobActorOptions): ActorRef<JobMessage> {
  const { runner, clock, parent } = options;
  let handle: AttemptHandle | undefined;
  let log: LogFile | undefined;
  let logError: unknown;
  let timer: TimerId | undefined;
  let watcher: ActorRef<ProgressWatcherMessage> | undefined;
  let watcherError: unknown;
  /** Whether the parent has heard how the attempt ended. */
  let reported = false;

  const start = async () => {
    if (options.logFile !== null) {
      log = await LogFile.open(options.logFile).catch((error) => {
        logError = error;
        return undefined;
      });
    }
    handle = runner.start(plan);
    if (plan.timeoutMs > 0) {
      timer = clock.setTimeout(() => self.tell({ type: "kill", reason: "timed-out" }), plan.timeoutMs);
    }
    forward(handle.events, self);
  };

  const onEvent = async (event: AttemptEvent) => {
    switch (event.type) {
      case "started":
        log?.write(`--- bgproc: job '${plan.name}', attempt ${plan.attempt}: ${event.ranOn}`);
        parent.started(event.ranOn);
        watcher ??= startProgressWatcher({
          dir: plan.jobDir,
          initial: plan.progress,
          publish: (value) => parent.progress(value),
          onCrash: (error) => watcherError = error,
        });
        return;
      case "output":
        log?.write(event.line);
        parent.output(event.stream, event.line);
        return;
      case "progress":
        parent.progress(event.value);
        return;
      case "ended": {
        const failure = await finish();
        await handle?.gone;
        reported = true;
        parent.ended(failure === undefined ? event.outcome : withLogError(event.outcome, failure));
        return;
      }
      default:
        unreachable(event);
    }
  };

  /**
   * Stop the timer, look at the progress one last time, close the log; returns the lines the attempt's stderr gets
   * for what failed of these, if anything did.
   */
  const finish = async (): Promise<string | undefined> => {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    await watcher?.ask<void>((reply) => ({ type: "stop", reply })).catch(() => {});
    watcher = undefined;
    const closeError = await log?.close().then(() => undefined, (error: unknown) => error);
    log = undefined;
    const lines: string[] = [];
    if (watcherError !== undefined) lines.push(`bgproc: the progress watcher failed: ${errorMessage(watcherError)}`);
    const error = logError ?? closeError;
    if (error !== undefined) {
      lines.push(`bgproc: could not write the log file ${options.logFile}: ${errorMessage(error)}`);
    }
    return lines.length === 0 ? undefined : lines.join("\n");
  };

  const self = spawnActor<JobMessage>(`job:${plan.name}#${plan.attempt}`, {
    async receive(message) {
      switch (message.type) {
        case "start":
          await start();
          return;
        case "attempt":
          await onEvent(message.event);
          return;
        case "kill":
          handle?.kill(message.reason);
          return;
        default:
          unreachable(message);
      }
    },
  }, (error) => {
    // Our own failure: end the attempt, and only once all of it is gone tell the parent (its slot is then free).
    handle?.kill("killed");
    void Promise.all([handle?.gone, finish()]).then(() => reported || parent.crashed(error));
  });
  return self;
}

/** Tell `self` each event of the attempt; reading goes on after a crash, so the runner is never blocked. */
function forward(events: AsyncIterable<AttemptEvent>, self: ActorRef<JobMessage>): void {
  void (async () => {
    for await (const event of events) {
      try {
        self.tell({ type: "attempt", event });
      } catch {
        // The actor crashed: its crash path kills the attempt; keep reading to the end.
      }
    }
  })();
}

function withLogError(outcome: AttemptOutcome, line: string): AttemptOutcome {
  const facts = { ...outcome.facts, stderr: `${outcome.facts.stderr}${line}\n` };
  return { ...outcome, facts };
}
