/**
 * The Supervisor actor: owns the queue and the worker slots. Starts one Job
 * actor per attempt while slots are free; on each failed attempt decides, by
 * the retry policy, whether to retry (only after the failed attempt's process
 * is reaped, which is when the Job actor reports, and after a backoff) or to
 * drop the job; bounds how often Blender may fail at start-up (restart
 * intensity, OTP-style) and reports its health; publishes every change as a
 * `JobEvent`.
 */

import { join } from "node:path";
import { type ActorRef, type Reply, spawnActor, unreachable } from "./_actor.ts";
import { type AttemptOutcome, type JobMessage, startJobActor } from "./_job_actor.ts";
import type { ResultsMessage } from "./_results.ts";
import type { Spawner } from "./_spawner.ts";
import { type DropReason, JobDroppedError } from "./errors.ts";
import type { JobResult, ManagerHealth } from "./types.ts";

/** A job as the supervisor keeps it until it ends. */
export interface SupervisedJob {
  readonly name: string;
  /** The job directory's name under the jobs root: unique per submission, so a reused name never shares one. */
  readonly dir: string;
  readonly specJson: string;
  readonly blendFile: string | null;
  readonly timeoutMs: number;
  readonly logFile: string | null;
}

/** What the supervisor tells the facade. */
export type JobEvent =
  | { readonly type: "started"; readonly name: string; readonly attempt: number; readonly pid: number }
  | { readonly type: "progress"; readonly name: string; readonly value: number }
  | {
    readonly type: "output";
    readonly name: string;
    readonly attempt: number;
    readonly stream: "stdout" | "stderr";
    readonly line: string;
  }
  | { readonly type: "retrying"; readonly name: string; readonly error: JobDroppedError; readonly delayMs: number }
  | { readonly type: "completed"; readonly name: string; readonly result: JobResult }
  | { readonly type: "dropped"; readonly name: string; readonly error: JobDroppedError }
  | { readonly type: "health"; readonly name: ""; readonly health: ManagerHealth };

/** Messages of the Supervisor. */
export type SupervisorMessage =
  | { readonly type: "submit"; readonly job: SupervisedJob }
  | { readonly type: "attemptEnded"; readonly name: string; readonly outcome: AttemptOutcome }
  | { readonly type: "retryDue"; readonly name: string }
  | { readonly type: "kill"; readonly name: string; readonly reply: Reply<void> }
  | { readonly type: "killAll"; readonly reply: Reply<void> }
  | { readonly type: "close"; readonly reply: Reply<void> };

/** When and how soon a failed attempt is tried again. */
export interface RetryPolicy {
  /** The reasons that earn another attempt (never `"killed"`). */
  readonly on: ReadonlySet<DropReason>;
  readonly initialDelayMs: number;
  readonly factor: number;
  readonly maxDelayMs: number;
}

/** At most `maxFailures` start-up failures in `periodMs` before the supervisor stops starting Blender for a while. */
export interface RestartIntensity {
  readonly maxFailures: number;
  readonly periodMs: number;
}

/** A timer's handle. */
export type TimerId = ReturnType<typeof setTimeout>;

/** Time, for the supervisor: injected so tests can drive it. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerId;
  clearTimeout(id: TimerId): void;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (id) => clearTimeout(id),
};

/** The supervisor's fixed settings. */
export interface SupervisorConfig {
  readonly maxWorkers: number;
  readonly maxAttempts: number;
  readonly retry: RetryPolicy;
  readonly intensity: RestartIntensity;
  readonly blender: string;
  readonly runtimeEntry: string;
  readonly jobsRoot: string;
  readonly resultsRoot: string;
  readonly outputLimit: number;
  readonly keepFiles: boolean;
  readonly spawner: Spawner;
  readonly clock: Clock;
  readonly results: ActorRef<ResultsMessage>;
  readonly publish: (event: JobEvent) => void;
}

interface Running {
  readonly job: SupervisedJob;
  readonly attempt: number;
  readonly actor: ActorRef<JobMessage>;
  readonly killWaiters: Reply<void>[];
  progress: number;
  /** A kill was asked for: however the attempt ends, it is not retried. */
  killed: boolean;
}

interface Waiting {
  readonly job: SupervisedJob;
  readonly attempt: number;
  readonly progress: number;
  readonly timer: TimerId | undefined;
}

/** Start the Supervisor. */
export function startSupervisor(config: SupervisorConfig): ActorRef<SupervisorMessage> {
  const { clock } = config;
  /** Jobs waiting for a first attempt, in order; a Map so a kill can take one out in O(1). */
  const queue = new Map<string, SupervisedJob>();
  /** Jobs whose next attempt is due; they go before the queue. */
  const due: Waiting[] = [];
  /** Jobs waiting out a retry backoff. */
  const backingOff = new Map<string, Waiting>();
  const running = new Map<string, Running>();
  /** When recent attempts failed before reaching bgproc's runtime. */
  let startFailures: number[] = [];
  let health: ManagerHealth = { status: "ok" };
  let closeWaiters: Reply<void>[] | undefined;

  const droppedBeforeRun = (job: SupervisedJob, attempts: number, reason: DropReason, summary: string) =>
    new JobDroppedError({
      jobName: job.name,
      reason,
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
      killed: false,
      actor: startJobActor({
        name: job.name,
        attempt,
        jobDir: join(config.jobsRoot, job.dir),
        specJson: job.specJson,
        blender: config.blender,
        runtimeEntry: config.runtimeEntry,
        blendFile: job.blendFile,
        timeoutMs: job.timeoutMs,
        outputLimit: config.outputLimit,
        logFile: job.logFile,
        resultsDir: config.resultsRoot,
        progress,
        spawner: config.spawner,
      }, {
        started: (pid) => config.publish({ type: "started", name: job.name, attempt, pid }),
        progress: (value) => {
          entry.progress = value;
          config.publish({ type: "progress", name: job.name, value });
        },
        output: (stream, line) => config.publish({ type: "output", name: job.name, attempt, stream, line }),
        ended: (outcome) => self.tell({ type: "attemptEnded", name: job.name, outcome }),
      }),
    };
    running.set(job.name, entry);
    entry.actor.tell({ type: "start" });
  };

  /** Whether start-ups keep failing: then nothing is started until the period has passed. */
  const circuitOpen = () => health.status === "failing" && clock.now() < health.retryAt.getTime();

  const pump = () => {
    while (running.size < config.maxWorkers && closeWaiters === undefined) {
      if (circuitOpen()) {
        dropEverythingWaiting("start-failed", failingSummary());
        break;
      }
      const next = due.shift();
      if (next !== undefined) {
        startAttempt(next.job, next.attempt, next.progress);
        continue;
      }
      const first = queue.values().next();
      if (first.done) break;
      queue.delete(first.value.name);
      startAttempt(first.value, 1, 0);
    }
    if (running.size === 0 && closeWaiters !== undefined) {
      const waiters = closeWaiters.splice(0);
      void Promise.all(removals).then(() => waiters.forEach((waiter) => waiter.resolve()));
    }
  };

  /** Job directories being removed; `close` waits for them, so no file operation outlives the manager. */
  const removals = new Set<Promise<void>>();
  const removeJobDir = (job: SupervisedJob) => {
    if (config.keepFiles) return;
    const removal: Promise<void> = Deno.remove(join(config.jobsRoot, job.dir), { recursive: true })
      .catch(() => {})
      .finally(() => removals.delete(removal));
    removals.add(removal);
  };

  const setHealth = (next: ManagerHealth) => {
    health = next;
    config.publish({ type: "health", name: "", health });
  };

  const failingSummary = () =>
    health.status === "failing"
      ? `Blender keeps failing at start-up (${health.failures} times in ${config.intensity.periodMs} ms), ` +
        `so no job is started until ${health.retryAt.toISOString()}; last failure: ${health.reason}`
      : "";

  /** Count a failure before the runtime; open the circuit when there were too many too fast. */
  const noteStartFailure = (summary: string) => {
    const now = clock.now();
    startFailures = startFailures.filter((at) => now - at < config.intensity.periodMs);
    startFailures.push(now);
    if (startFailures.length > config.intensity.maxFailures) {
      setHealth({
        status: "failing",
        reason: summary,
        failures: startFailures.length,
        since: new Date(now),
        retryAt: new Date(now + config.intensity.periodMs),
      });
    }
  };

  const backoff = (attempt: number) =>
    Math.min(config.retry.maxDelayMs, config.retry.initialDelayMs * config.retry.factor ** (attempt - 1));

  const ended = (name: string, outcome: AttemptOutcome) => {
    const entry = running.get(name);
    if (entry === undefined) return;
    running.delete(name);
    void entry.actor.stop();
    const { job, attempt } = entry;
    const { run } = outcome;
    if (run.reachedRuntime && health.status === "failing") {
      startFailures = [];
      setHealth({ status: "ok" });
    }
    if (outcome.kind === "completed") {
      config.results.tell({ type: "store", name, pythonData: outcome.pythonData, dataBlocks: outcome.dataBlocks });
      removeJobDir(job);
      config.publish({
        type: "completed",
        name,
        result: {
          name,
          pythonData: outcome.pythonData,
          dataBlocks: outcome.dataBlocks,
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
      // Blender itself failing to start: the executable would not run, or it died before bgproc's runtime with
      // nothing of the job's (a .blend file) to blame. Failures of the job's own inputs do not count.
      const ranBlender = run.exitCode !== null || run.signal !== null;
      const startFailure = !entry.killed && outcome.reason !== "killed" && outcome.reason !== "timed-out" &&
        !run.reachedRuntime && (run.spawnFailed || (ranBlender && job.blendFile === null));
      if (startFailure) noteStartFailure(outcome.summary);
      const reason = entry.killed ? "killed" : outcome.reason;
      const error = new JobDroppedError({
        jobName: name,
        reason,
        summary: entry.killed && outcome.reason !== "killed"
          ? `the job was killed (${outcome.summary})`
          : outcome.summary,
        attempts: attempt,
        exitCode: run.exitCode,
        signal: run.signal,
        pythonError: outcome.pythonError,
        stderrTail: run.stderr.last(40),
        stdoutTail: run.stdout.last(40),
        commandLine: run.commandLine,
      }, outcome.cause === undefined ? undefined : { cause: outcome.cause });
      const retry = config.retry.on.has(reason) && attempt < config.maxAttempts &&
        closeWaiters === undefined && !circuitOpen();
      if (retry) {
        const delayMs = backoff(attempt);
        const waiting = { job, attempt: attempt + 1, progress: entry.progress };
        if (delayMs <= 0) {
          due.push({ ...waiting, timer: undefined });
        } else {
          const timer = clock.setTimeout(() => self.tell({ type: "retryDue", name }), delayMs);
          backingOff.set(name, { ...waiting, timer });
        }
        config.publish({ type: "retrying", name, error, delayMs });
      } else {
        removeJobDir(job);
        config.publish({ type: "dropped", name, error });
      }
    }
    for (const waiter of entry.killWaiters) waiter.resolve();
    pump();
  };

  /** Take a job that is not running out of the queue or the retry lists; returns it and its attempts so far. */
  const takeWaiting = (name: string): { job: SupervisedJob; attempts: number } | undefined => {
    const queued = queue.get(name);
    if (queued !== undefined) {
      queue.delete(name);
      return { job: queued, attempts: 0 };
    }
    const waiting = backingOff.get(name);
    if (waiting !== undefined) {
      backingOff.delete(name);
      if (waiting.timer !== undefined) clock.clearTimeout(waiting.timer);
      return { job: waiting.job, attempts: waiting.attempt - 1 };
    }
    const index = due.findIndex((entry) => entry.job.name === name);
    if (index < 0) return undefined;
    const [entry] = due.splice(index, 1) as [Waiting];
    return { job: entry.job, attempts: entry.attempt - 1 };
  };

  const dropWaiting = (name: string, reason: DropReason, summary: string): boolean => {
    const taken = takeWaiting(name);
    if (taken === undefined) return false;
    if (taken.attempts > 0) removeJobDir(taken.job);
    config.publish({ type: "dropped", name, error: droppedBeforeRun(taken.job, taken.attempts, reason, summary) });
    return true;
  };

  const dropEverythingWaiting = (reason: DropReason, summary: string) => {
    for (const name of [...queue.keys(), ...backingOff.keys(), ...due.map((entry) => entry.job.name)]) {
      dropWaiting(name, reason, summary);
    }
  };

  const kill = (name: string, reply: Reply<void>) => {
    if (dropWaiting(name, "killed", "the job was killed before its attempt started")) return reply.resolve();
    const entry = running.get(name);
    if (entry === undefined) return reply.resolve();
    entry.killed = true;
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
    dropEverythingWaiting("killed", summary);
    for (const entry of running.values()) {
      entry.killed = true;
      entry.actor.tell({ type: "kill", reason: "killed" });
    }
  };

  const self = spawnActor<SupervisorMessage>("supervisor", {
    receive(message) {
      switch (message.type) {
        case "submit": {
          const { job } = message;
          if (closeWaiters !== undefined) {
            config.publish({
              type: "dropped",
              name: job.name,
              error: droppedBeforeRun(job, 0, "killed", "the manager was closed"),
            });
          } else if (circuitOpen()) {
            config.publish({
              type: "dropped",
              name: job.name,
              error: droppedBeforeRun(job, 0, "start-failed", failingSummary()),
            });
          } else {
            queue.set(job.name, job);
            pump();
          }
          return;
        }
        case "attemptEnded":
          ended(message.name, message.outcome);
          return;
        case "retryDue": {
          const waiting = backingOff.get(message.name);
          if (waiting !== undefined) {
            backingOff.delete(message.name);
            due.push({ ...waiting, timer: undefined });
            pump();
          }
          return;
        }
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
