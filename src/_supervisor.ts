/**
 * The Supervisor actor: owns the queue and the worker slots. Starts one Job
 * actor per attempt while slots are free, decides on each failed attempt
 * whether to retry (only once the failed attempt's process is reaped, which
 * is when the Job actor reports) or to drop the job, and publishes every
 * change as a `JobEvent`.
 */

import { join } from "node:path";
import { type ActorRef, type Reply, spawnActor, unreachable } from "./_actor.ts";
import { type AttemptOutcome, type JobMessage, startJobActor } from "./_job_actor.ts";
import type { ResultsMessage } from "./_results.ts";
import type { Spawner } from "./_spawner.ts";
import { JobDroppedError } from "./errors.ts";
import type { JobResult } from "./types.ts";

/** A job as the supervisor keeps it until it ends. */
export interface SupervisedJob {
  readonly name: string;
  readonly specJson: string;
  readonly blendFile: string | null;
  readonly timeoutMs: number;
}

/** What the supervisor tells the facade. */
export type JobEvent =
  | { readonly type: "started"; readonly name: string; readonly attempt: number; readonly pid: number }
  | { readonly type: "progress"; readonly name: string; readonly value: number }
  | { readonly type: "output"; readonly name: string; readonly stream: "stdout" | "stderr"; readonly line: string }
  | { readonly type: "retrying"; readonly name: string; readonly error: JobDroppedError }
  | { readonly type: "completed"; readonly name: string; readonly result: JobResult }
  | { readonly type: "dropped"; readonly name: string; readonly error: JobDroppedError };

/** Messages of the Supervisor. */
export type SupervisorMessage =
  | { readonly type: "submit"; readonly job: SupervisedJob }
  | { readonly type: "attemptEnded"; readonly name: string; readonly outcome: AttemptOutcome }
  | { readonly type: "kill"; readonly name: string; readonly reply: Reply<void> }
  | { readonly type: "killAll"; readonly reply: Reply<void> }
  | { readonly type: "close"; readonly reply: Reply<void> };

/** The supervisor's fixed settings. */
export interface SupervisorConfig {
  readonly maxWorkers: number;
  readonly maxAttempts: number;
  readonly blender: string;
  readonly runtimeEntry: string;
  readonly jobsRoot: string;
  readonly outputLimit: number;
  readonly keepFiles: boolean;
  readonly spawner: Spawner;
  readonly results: ActorRef<ResultsMessage>;
  readonly publish: (event: JobEvent) => void;
}

interface Running {
  readonly job: SupervisedJob;
  readonly attempt: number;
  readonly actor: ActorRef<JobMessage>;
  readonly killWaiters: Reply<void>[];
  progress: number;
}

/** Start the Supervisor. */
export function startSupervisor(config: SupervisorConfig): ActorRef<SupervisorMessage> {
  /** Jobs waiting for a first attempt, in order; a Map so a kill can take one out in O(1). */
  const queue = new Map<string, SupervisedJob>();
  /** Jobs waiting for another attempt; they go before the queue. */
  const retries: { job: SupervisedJob; attempt: number; progress: number }[] = [];
  const running = new Map<string, Running>();
  let closeWaiters: Reply<void>[] | undefined;

  const dropped = (job: SupervisedJob, attempts: number, summary: string) =>
    new JobDroppedError({
      jobName: job.name,
      reason: "killed",
      summary,
      attempts,
      exitCode: null,
      signal: null,
      pythonError: null,
      stderrTail: "",
      stdoutTail: "",
      commandLine: "",
    });

  const startAttempt = (job: SupervisedJob, attempt: number, progress: number) => {
    const entry: Running = {
      job,
      attempt,
      killWaiters: [],
      progress,
      actor: startJobActor({
        name: job.name,
        attempt,
        jobDir: join(config.jobsRoot, job.name),
        specJson: job.specJson,
        blender: config.blender,
        runtimeEntry: config.runtimeEntry,
        blendFile: job.blendFile,
        timeoutMs: job.timeoutMs,
        outputLimit: config.outputLimit,
        progress,
        spawner: config.spawner,
      }, {
        started: (pid) => config.publish({ type: "started", name: job.name, attempt, pid }),
        progress: (value) => {
          entry.progress = value;
          config.publish({ type: "progress", name: job.name, value });
        },
        output: (stream, line) => config.publish({ type: "output", name: job.name, stream, line }),
        ended: (outcome) => self.tell({ type: "attemptEnded", name: job.name, outcome }),
      }),
    };
    running.set(job.name, entry);
    entry.actor.tell({ type: "start" });
  };

  const pump = () => {
    while (running.size < config.maxWorkers && closeWaiters === undefined) {
      const retry = retries.shift();
      if (retry !== undefined) {
        startAttempt(retry.job, retry.attempt, retry.progress);
        continue;
      }
      const next = queue.values().next();
      if (next.done) break;
      queue.delete(next.value.name);
      startAttempt(next.value, 1, 0);
    }
    if (running.size === 0 && closeWaiters !== undefined) {
      const waiters = closeWaiters.splice(0);
      void Promise.all(removals).then(() => waiters.forEach((waiter) => waiter.resolve()));
    }
  };

  /** Job directories being removed; `close` waits for them, so no file operation outlives the manager. */
  const removals = new Set<Promise<void>>();
  const removeJobDir = (name: string) => {
    if (config.keepFiles) return;
    const removal = Deno.remove(join(config.jobsRoot, name), { recursive: true })
      .catch(() => {})
      .finally(() => removals.delete(removal));
    removals.add(removal);
  };

  const ended = (name: string, outcome: AttemptOutcome) => {
    const entry = running.get(name);
    if (entry === undefined) return;
    running.delete(name);
    void entry.actor.stop();
    const { job, attempt } = entry;
    const { run } = outcome;
    if (outcome.kind === "completed") {
      config.results.tell({ type: "store", name, pythonData: outcome.pythonData });
      removeJobDir(name);
      config.publish({
        type: "completed",
        name,
        result: {
          name,
          pythonData: outcome.pythonData,
          stdout: run.stdout.text(),
          stderr: run.stderr.text(),
          attempts: attempt,
          startedAt: run.startedAt,
          endedAt: run.endedAt,
          durationMs: run.endedAt.getTime() - run.startedAt.getTime(),
          commandLine: run.commandLine,
        },
      });
    } else {
      const error = new JobDroppedError({
        jobName: name,
        reason: outcome.reason,
        summary: outcome.summary,
        attempts: attempt,
        exitCode: run.exitCode,
        signal: run.signal,
        pythonError: outcome.pythonError,
        stderrTail: run.stderr.last(40),
        stdoutTail: run.stdout.last(40),
        commandLine: run.commandLine,
      }, outcome.cause === undefined ? undefined : { cause: outcome.cause });
      const retry = outcome.reason !== "killed" && attempt < config.maxAttempts && closeWaiters === undefined;
      if (retry) {
        retries.push({ job, attempt: attempt + 1, progress: entry.progress });
        config.publish({ type: "retrying", name, error });
      } else {
        removeJobDir(name);
        config.publish({ type: "dropped", name, error });
      }
    }
    for (const waiter of entry.killWaiters) waiter.resolve();
    pump();
  };

  const kill = (name: string, reply: Reply<void>) => {
    const queued = queue.get(name);
    if (queued !== undefined) {
      queue.delete(name);
      config.publish({ type: "dropped", name, error: dropped(queued, 0, "the job was killed while queued") });
      reply.resolve();
      return;
    }
    const index = retries.findIndex((retry) => retry.job.name === name);
    if (index >= 0) {
      const [retry] = retries.splice(index, 1);
      if (retry !== undefined) {
        removeJobDir(name);
        config.publish({
          type: "dropped",
          name,
          error: dropped(retry.job, retry.attempt - 1, "the job was killed while waiting for a retry"),
        });
      }
      reply.resolve();
      return;
    }
    const entry = running.get(name);
    if (entry === undefined) {
      reply.resolve();
      return;
    }
    entry.killWaiters.push(reply);
    entry.actor.tell({ type: "kill", reason: "killed" });
  };

  /** Reply once every attempt running now has ended. */
  const whenRunningEnded = (reply: Reply<void>) => {
    let left = running.size;
    if (left === 0) return reply.resolve();
    const countdown: Reply<void> = { resolve: () => --left === 0 && reply.resolve(), reject: reply.reject };
    for (const entry of running.values()) entry.killWaiters.push(countdown);
  };

  const killEverything = (summary: string) => {
    for (const job of queue.values()) {
      config.publish({ type: "dropped", name: job.name, error: dropped(job, 0, summary) });
    }
    queue.clear();
    for (const retry of retries.splice(0)) {
      removeJobDir(retry.job.name);
      config.publish({ type: "dropped", name: retry.job.name, error: dropped(retry.job, retry.attempt - 1, summary) });
    }
    for (const entry of running.values()) entry.actor.tell({ type: "kill", reason: "killed" });
  };

  const self = spawnActor<SupervisorMessage>("supervisor", {
    receive(message) {
      switch (message.type) {
        case "submit":
          if (closeWaiters !== undefined) {
            config.publish({
              type: "dropped",
              name: message.job.name,
              error: dropped(message.job, 0, "the manager was closed"),
            });
            return;
          }
          queue.set(message.job.name, message.job);
          pump();
          return;
        case "attemptEnded":
          ended(message.name, message.outcome);
          return;
        case "kill":
          kill(message.name, message.reply);
          return;
        case "killAll":
          killEverything("the job was killed by killAll()");
          whenRunningEnded(message.reply);
          return;
        case "close":
          closeWaiters ??= [];
          closeWaiters.push(message.reply);
          killEverything("the manager was closed");
          pump();
          return;
        default:
          unreachable(message);
      }
    },
  });
  return self;
}
