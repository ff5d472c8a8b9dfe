/**
 * The Supervisor actor: owns the waiting jobs and the worker slots. Starts
 * one Job actor per attempt while slots are free; when an attempt fails it
 * decides by policy (`policy.ts`) whether to retry (only after the failed
 * attempt is gone, which is when its Job actor reports, and after a backoff)
 * or to drop the job; stops starting Blender while it keeps failing at
 * start-up (restart intensity) and reports its health; publishes every
 * change. It knows attempts only through the runner seam.
 */

import { droppedBeforeBlender } from "../_dropped.ts";
import { join } from "node:path";
import { type ActorRef, type Reply, spawnActor, unreachable } from "../_actor.ts";
import type { ResultsMessage } from "./results_actor.ts";
import type { BackendEvent } from "../backend.ts";
import { errorMessage } from "./job/outcome.ts";
import type { AttemptOutcome, Runner, WarmExit } from "./runners/runner.ts";
import { type DropReason, JobDroppedError } from "../errors.ts";
import type { JobResult, ManagerHealth } from "../types.ts";
import { type AttemptTiming, type JobTimings, jobTimings } from "../timings.ts";
import { contextOf, meters, safely, traceAttempt } from "../_telemetry.ts";
import type { Clock } from "./clock.ts";
import { type JobMessage, startJobActor } from "./job_actor.ts";
import { backoffMs, RestartCircuit, type RestartIntensity, type RetryPolicy } from "./policy.ts";
import { type NextAttempt, type SupervisedJob, WaitingJobs } from "./waiting.ts";

export type { SupervisedJob } from "./waiting.ts";

/** What the supervisor tells the facade about jobs. */
export type JobEvent =
  | Extract<BackendEvent, { type: "started" | "progress" | "output" }>
  | { readonly type: "retrying"; readonly name: string; readonly error: JobDroppedError; readonly delayMs: number }
  | { readonly type: "completed"; readonly name: string; readonly result: JobResult }
  | { readonly type: "dropped"; readonly name: string; readonly error: JobDroppedError; readonly timings: JobTimings };

/** Messages of the Supervisor. */
export type SupervisorMessage =
  | { readonly type: "submit"; readonly job: SupervisedJob }
  | { readonly type: "attemptStarted"; readonly name: string; readonly attempt: number }
  | { readonly type: "attemptProgress"; readonly name: string; readonly attempt: number; readonly value: number }
  | { readonly type: "attemptEnded"; readonly name: string; readonly attempt: number; readonly outcome: AttemptOutcome }
  | { readonly type: "jobActorCrashed"; readonly name: string; readonly attempt: number; readonly error: unknown }
  | { readonly type: "retryDue"; readonly name: string }
  | { readonly type: "configure"; readonly maxWorkers?: number; readonly maxAttempts?: number }
  | { readonly type: "warmExited"; readonly exit: WarmExit }
  | { readonly type: "kill"; readonly name: string; readonly reply: Reply<void> }
  | { readonly type: "reprioritize"; readonly name: string; readonly priority: number; readonly reply: Reply<boolean> }
  | { readonly type: "killAll"; readonly reply: Reply<void> }
  | { readonly type: "close"; readonly reply: Reply<void> };

/** The supervisor's settings. */
export interface SupervisorConfig {
  /** How the runner runs Blender, for telemetry. */
  readonly mode: string;
  /** The GPU of each slot: slot `i` gets `gpus[i % gpus.length]` (none when empty). */
  readonly gpus?: readonly string[];
  readonly maxWorkers: number;
  readonly maxAttempts: number;
  readonly retry: RetryPolicy;
  readonly intensity: RestartIntensity;
  readonly jobsRoot: string;
  readonly resultsRoot: string;
  readonly outputLimit: number;
  readonly resultLimit: number;
  readonly keepFiles: boolean;
  readonly runner: Runner;
  readonly clock: Clock;
  readonly results: ActorRef<ResultsMessage>;
  readonly publish: (event: JobEvent) => void;
  readonly publishHealth: (health: ManagerHealth) => void;
}

/** How many attempts of one job may die through no act of their own without counting. */
const MAX_SPARED = 1;

interface Running {
  readonly job: SupervisedJob;
  readonly attempt: number;
  /** Which of the `maxWorkers` slots it runs in (0 for the first), for its trace. */
  readonly slot: number;
  /** When the supervisor started it (epoch ms): its timing starts here, a warm Blender's boot included. */
  readonly startMs: number;
  readonly actor: ActorRef<JobMessage>;
  readonly killWaiters: Reply<void>[];
  progress: number;
  /** A kill was asked for: however the attempt ends, it is not retried. */
  killed: boolean;
}

/** Start the Supervisor. */
export function startSupervisor(config: SupervisorConfig): ActorRef<SupervisorMessage> {
  const state = new SupervisorState(config);
  const self = spawnActor<SupervisorMessage>("supervisor", {
    receive: (message) => state.receive(message),
  }, (error) => {
    // The supervisor has no parent to restart it: fail every job loudly rather than leave them hanging.
    state.failAll(error);
  });
  state.attach(self);
  return self;
}

/** The supervisor's state and the handling of each message; touched only by its actor's `receive`. */
class SupervisorState {
  readonly #config: SupervisorConfig;
  readonly #waiting = new WaitingJobs();
  readonly #running = new Map<string, Running>();
  readonly #circuit: RestartCircuit;
  /** Job directories being removed; `close` waits for them, so no file operation outlives the manager. */
  readonly #removals = new Set<Promise<void>>();
  #maxWorkers: number;
  #maxAttempts: number;
  /** Attempts of a job that did not count (see `AttemptOutcome.collateral`), by job name, while the job lives. */
  readonly #spared = new Map<string, number>();
  /** The ended attempts of each job that has not ended, and when it was submitted. */
  readonly #timings = new Map<string, { addedMs: number; attempts: AttemptTiming[] }>();
  #closeWaiters: Reply<void>[] | undefined;
  #self!: ActorRef<SupervisorMessage>;

  constructor(config: SupervisorConfig) {
    this.#config = config;
    this.#maxWorkers = config.maxWorkers;
    this.#maxAttempts = config.maxAttempts;
    this.#circuit = new RestartCircuit(config.intensity, config.clock);
  }

  /** Learn the actor's own address (before any message arrives), and hear of the runner's warm Blenders. */
  attach(self: ActorRef<SupervisorMessage>): void {
    this.#self = self;
    this.#config.runner.onWarmExit((exit) => self.tell({ type: "warmExited", exit }));
  }

  receive(message: SupervisorMessage): void {
    switch (message.type) {
      case "submit":
        return this.#submit(message.job);
      case "attemptStarted":
        if (this.#current(message.name, message.attempt)) {
          this.#config.publish({ type: "started", name: message.name, attempt: message.attempt });
        }
        return;
      case "attemptProgress": {
        const entry = this.#current(message.name, message.attempt);
        if (entry === undefined || message.value <= entry.progress) return;
        entry.progress = message.value;
        this.#config.publish({ type: "progress", name: message.name, value: message.value });
        return;
      }
      case "attemptEnded":
        return this.#attemptOver(message.name, message.attempt, message.outcome);
      case "jobActorCrashed":
        return this.#attemptOver(message.name, message.attempt, crashOutcome(message.attempt, message.error));
      case "retryDue":
        if (this.#waiting.backoffEnded(message.name)) this.#startWhatFits();
        return;
      case "configure":
        if (message.maxWorkers !== undefined) this.#maxWorkers = message.maxWorkers;
        if (message.maxAttempts !== undefined) this.#maxAttempts = message.maxAttempts;
        return this.#startWhatFits(); // A smaller maxWorkers lets running attempts finish.
      case "warmExited":
        return this.#warmExited(message.exit);
      case "kill":
        return this.#kill(message.name, message.reply);
      case "reprioritize":
        return message.reply.resolve(this.#waiting.reprioritize(message.name, message.priority));
      case "killAll":
        this.#killEverything("the job was killed by killAll()");
        return this.#whenRunningEnded(message.reply);
      case "close":
        this.#closeWaiters ??= [];
        this.#closeWaiters.push(message.reply);
        this.#killEverything("the manager was closed");
        return this.#startWhatFits();
      default:
        unreachable(message);
    }
  }

  /**
   * A warm Blender (zygote, pool worker) died on its own while idle: a start-up failure of the kind the restart
   * intensity bounds. Restart it while the intensity allows; past it, health says failing and nothing restarts.
   */
  #warmExited(exit: WarmExit): void {
    if (this.#closeWaiters !== undefined) return;
    const opened = this.#circuit.recordFailure(`the ${exit.kind} ${exit.id} exited on its own (${exit.how})`);
    if (opened !== undefined) return this.#config.publishHealth(opened);
    if (this.#circuit.isOpen()) return;
    safely(() => meters().warmRestarts.add(1, { "bgproc.blender.kind": exit.kind }));
    this.#config.runner.restartWarm(exit.factoryStartup);
  }

  /** The supervisor itself crashed: drop what waits, so no caller waits forever. */
  failAll(error: unknown): void {
    this.#dropEverythingWaiting("crashed", `bgproc's supervisor failed: ${errorMessage(error)}`);
    for (const entry of this.#running.values()) entry.actor.tell({ type: "kill", reason: "killed" });
  }

  #submit(job: SupervisedJob): void {
    this.#spared.delete(job.name);
    this.#timings.set(job.name, { addedMs: job.addedMs ?? Date.now(), attempts: [] });
    if (this.#closeWaiters !== undefined) return this.#dropNew(job, "killed", "the manager was closed");
    if (this.#circuit.isOpen()) return this.#dropNew(job, "start-failed", this.#circuit.summary());
    this.#waiting.enqueue(job);
    this.#startWhatFits();
  }

  #current(name: string, attempt: number): Running | undefined {
    const entry = this.#running.get(name);
    return entry?.attempt === attempt ? entry : undefined;
  }

  /** Start waiting attempts while slots are free; once closing and nothing runs, answer `close`. */
  #startWhatFits(): void {
    while (this.#running.size < this.#maxWorkers && this.#closeWaiters === undefined) {
      if (this.#circuit.isOpen()) {
        this.#dropEverythingWaiting("start-failed", this.#circuit.summary());
        break;
      }
      const next = this.#waiting.takeNext();
      if (next === undefined) break;
      this.#startAttempt(next);
    }
    if (this.#running.size === 0 && this.#closeWaiters !== undefined) {
      const waiters = this.#closeWaiters.splice(0);
      void Promise.all(this.#removals).then(() => waiters.forEach((waiter) => waiter.resolve()));
    }
  }

  #startAttempt({ job, attempt, progress }: NextAttempt): void {
    const config = this.#config;
    const self = this.#self;
    const name = job.name;
    let slot = 0;
    const taken = new Set([...this.#running.values()].map((entry) => entry.slot));
    while (taken.has(slot)) slot++;
    const gpus = config.gpus ?? [];
    const gpu = gpus.length === 0 ? undefined : gpus[slot % gpus.length];
    const actor = startJobActor({
      name,
      attempt,
      jobDir: join(config.jobsRoot, job.dir),
      // The slot's GPU, for the runtime to give the job (an attempt may run in another slot than the last).
      specJson: gpu === undefined ? job.specJson : `${job.specJson.slice(0, -1)},"gpu":${JSON.stringify(gpu)}}`,
      blendFile: job.blendFile,
      factoryStartup: job.factoryStartup ?? true,
      timeoutMs: job.timeoutMs,
      outputLimit: config.outputLimit,
      resultLimit: config.resultLimit,
      progress,
      resultsDir: config.resultsRoot,
      outputDir: job.outputDir ?? null,
      keepFiles: config.keepFiles,
      inputs: job.inputs ?? [],
    }, {
      runner: config.runner,
      clock: config.clock,
      logFile: job.logFile,
      parent: {
        started: () => self.tell({ type: "attemptStarted", name, attempt }),
        progress: (value) => self.tell({ type: "attemptProgress", name, attempt, value }),
        output: (stream, line) => config.publish({ type: "output", name, attempt, stream, line }),
        ended: (outcome) => self.tell({ type: "attemptEnded", name, attempt, outcome }),
        crashed: (error) => self.tell({ type: "jobActorCrashed", name, attempt, error }),
      },
    });
    const startMs = Date.now();
    this.#running.set(name, { job, attempt, slot, startMs, actor, killWaiters: [], progress, killed: false });
    actor.tell({ type: "start" });
  }

  #attemptOver(name: string, attempt: number, outcome: AttemptOutcome): void {
    const entry = this.#current(name, attempt);
    if (entry === undefined) return;
    this.#running.delete(name);
    void entry.actor.stop();
    // Blender reached the job's own code: whatever start-up trouble there was is over.
    if (outcome.kind === "completed" || outcome.reason === "error") {
      const health = this.#circuit.recordSuccess();
      if (health !== undefined) this.#config.publishHealth(health);
    }
    this.#recordAttempt(entry, outcome);
    if (outcome.kind === "completed") this.#completed(entry, outcome);
    else this.#failed(entry, outcome);
    for (const waiter of entry.killWaiters) waiter.resolve();
    this.#startWhatFits();
  }

  /** Keep an ended attempt's timing for the job's; its spans and metrics. */
  #recordAttempt({ job, attempt, killed, slot, startMs }: Running, outcome: AttemptOutcome): void {
    const { facts } = outcome;
    // The runner's start may come later (a pool worker or zygote still booting): that wait is start-up too.
    const started = Math.min(startMs, facts.startedAt.getTime());
    const phases = (facts.phases ?? []).map((phase) =>
      phase.phase === "start" ? { ...phase, startMs: started } : phase
    );
    const timing: AttemptTiming = {
      attempt,
      startMs: started,
      endMs: Math.max(facts.endedAt.getTime(), phases.at(-1)?.endMs ?? 0),
      outcome: outcome.kind === "completed" ? "completed" : killed ? "killed" : outcome.reason,
      ranOn: facts.ranOn,
      ...(facts.blender === undefined ? {} : { blender: facts.blender }),
      phases,
    };
    this.#timings.get(job.name)?.attempts.push(timing);
    const mode = { "bgproc.mode": this.#config.mode };
    safely(() => {
      const { attemptDuration, blenderStartup } = meters();
      attemptDuration.record((timing.endMs - timing.startMs) / 1000, {
        ...mode,
        "bgproc.attempt.outcome": timing.outcome,
      });
      const start = phases.find((phase) => phase.phase === "start");
      if (start !== undefined) blenderStartup.record((start.endMs - start.startMs) / 1000, mode);
    });
    const exit = facts.signal !== null
      ? { "bgproc.signal": facts.signal }
      : facts.exitCode === null
      ? {}
      : { "process.exit.code": facts.exitCode };
    traceAttempt(contextOf(job.trace), timing, { "bgproc.job.name": job.name, "bgproc.slot": slot, ...mode, ...exit });
  }

  /** The timings of a job that ends now; forgets them. */
  #endTimings(name: string): JobTimings {
    const kept = this.#timings.get(name);
    this.#timings.delete(name);
    const now = Date.now();
    return jobTimings(kept?.addedMs ?? now, kept?.attempts ?? [], now);
  }

  #completed({ job, attempt }: Running, outcome: AttemptOutcome & { kind: "completed" }): void {
    const { name } = job;
    const { facts } = outcome;
    const { dataBlocks, outputsFolder } = outcome;
    this.#config.results.tell({ type: "store", name, library: dataBlocks?.path ?? null, outputsFolder });
    this.#spared.delete(name);
    this.#removeJobDir(job);
    this.#config.publish({
      type: "completed",
      name,
      result: {
        name,
        pythonData: outcome.pythonData,
        dataBlocks: outcome.dataBlocks,
        outputs: outcome.outputs,
        stdout: facts.stdout,
        stderr: facts.stderr,
        attempts: attempt,
        startedAt: facts.startedAt,
        endedAt: facts.endedAt,
        durationMs: facts.endedAt.getTime() - facts.startedAt.getTime(),
        commandLine: facts.ranOn,
        timings: this.#endTimings(name),
      },
    });
  }

  #failed(entry: Running, outcome: AttemptOutcome & { kind: "failed" }): void {
    const { job, attempt } = entry;
    if (outcome.startFailure && !entry.killed) {
      const health = this.#circuit.recordFailure(outcome.summary);
      if (health !== undefined) this.#config.publishHealth(health);
    }
    const reason = entry.killed ? "killed" : outcome.reason;
    const { facts } = outcome;
    const error = new JobDroppedError({
      jobName: job.name,
      reason,
      summary: entry.killed && outcome.reason !== "killed"
        ? `the job was killed (${outcome.summary})`
        : outcome.summary,
      attempts: attempt,
      exitCode: facts.exitCode,
      signal: facts.signal,
      pythonError: outcome.pythonError,
      stderrTail: lastLines(facts.stderr, 40),
      stdoutTail: lastLines(facts.stdout, 40),
      commandLine: facts.ranOn,
      ...(facts.blender === undefined ? {} : { blender: facts.blender }),
    }, outcome.cause === undefined ? undefined : { cause: outcome.cause });
    // An attempt that died through no act of its own (its zygote died under it) is retried once without counting.
    const spared = this.#spared.get(job.name) ?? 0;
    const collateral = outcome.collateral !== undefined && !entry.killed && spared < MAX_SPARED;
    if (collateral) this.#spared.set(job.name, spared + 1);
    const limit = (job.maxAttempts ?? this.#maxAttempts) + (this.#spared.get(job.name) ?? 0);
    const retry = (collateral || this.#config.retry.on.has(reason)) && attempt < limit &&
      this.#closeWaiters === undefined && !this.#circuit.isOpen();
    if (!retry) {
      this.#spared.delete(job.name);
      this.#removeJobDir(job);
      return this.#config.publish({ type: "dropped", name: job.name, error, timings: this.#endTimings(job.name) });
    }
    const delayMs = collateral ? 0 : backoffMs(this.#config.retry, attempt);
    const next = { job, attempt: attempt + 1, progress: entry.progress };
    if (delayMs <= 0) {
      this.#waiting.addDue(next);
    } else {
      const self = this.#self;
      const timer = this.#config.clock.setTimeout(() => self.tell({ type: "retryDue", name: job.name }), delayMs);
      this.#waiting.addBackingOff(next, timer);
    }
    this.#config.publish({ type: "retrying", name: job.name, error, delayMs });
  }

  #removeJobDir(job: SupervisedJob): void {
    if (this.#config.keepFiles) return;
    const removal: Promise<void> = Deno.remove(join(this.#config.jobsRoot, job.dir), { recursive: true })
      .catch(() => {})
      .finally(() => this.#removals.delete(removal));
    this.#removals.add(removal);
  }

  /** Drop a job that never got to run (or waits between attempts). */
  #dropWaiting(name: string, reason: DropReason, summary: string): boolean {
    const taken = this.#waiting.take(name);
    if (taken === undefined) return false;
    if (taken.timer !== undefined) this.#config.clock.clearTimeout(taken.timer);
    this.#spared.delete(name);
    if (taken.attempts > 0) this.#removeJobDir(taken.job);
    this.#config.publish({
      type: "dropped",
      name,
      error: droppedBeforeBlender(taken.job.name, reason, summary, taken.attempts),
      timings: this.#endTimings(name),
    });
    return true;
  }

  #dropNew(job: SupervisedJob, reason: DropReason, summary: string): void {
    this.#config.publish({
      type: "dropped",
      name: job.name,
      error: droppedBeforeBlender(job.name, reason, summary, 0),
      timings: this.#endTimings(job.name),
    });
  }

  #dropEverythingWaiting(reason: DropReason, summary: string): void {
    for (const name of this.#waiting.names()) this.#dropWaiting(name, reason, summary);
  }

  #kill(name: string, reply: Reply<void>): void {
    if (this.#dropWaiting(name, "killed", "the job was killed before its attempt started")) return reply.resolve();
    const entry = this.#running.get(name);
    if (entry === undefined) return reply.resolve();
    entry.killed = true;
    entry.killWaiters.push(reply);
    entry.actor.tell({ type: "kill", reason: "killed" });
  }

  /** Reply once every attempt running now has ended. */
  #whenRunningEnded(reply: Reply<void>): void {
    let left = this.#running.size;
    if (left === 0) return reply.resolve();
    const countdown: Reply<void> = { resolve: () => --left === 0 && reply.resolve(), reject: reply.reject };
    for (const entry of this.#running.values()) entry.killWaiters.push(countdown);
  }

  #killEverything(summary: string): void {
    this.#dropEverythingWaiting("killed", summary);
    for (const entry of this.#running.values()) {
      entry.killed = true;
      entry.actor.tell({ type: "kill", reason: "killed" });
    }
  }
}

/** A crashed Job actor, as an attempt outcome: the attempt was killed and is gone. */
function crashOutcome(attempt: number, error: unknown): AttemptOutcome {
  const now = new Date();
  return {
    kind: "failed",
    reason: "crashed",
    summary: `bgproc's Job actor failed (the attempt was killed): ${errorMessage(error)}`,
    pythonError: null,
    startFailure: false,
    cause: error,
    facts: { attempt, ranOn: "", startedAt: now, endedAt: now, exitCode: null, signal: null, stdout: "", stderr: "" },
  };
}

/** The last `count` lines of `text` (each ending in `\n`). */
function lastLines(text: string, count: number): string {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const kept = lines.slice(-count);
  return kept.length === 0 ? "" : kept.join("\n") + "\n";
}
