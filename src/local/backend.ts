/**
 * The local backend: jobs run in Blenders on this machine, under the supervisor (`supervisor.ts`),
 * one job actor per attempt, and a runner per mode (`runners/`). Owns the work root, the runner, the supervisor
 * and the Results actor, and turns the supervisor's events into the facade's.
 */

import { join } from "node:path";
import type { ActorRef } from "../_actor.ts";
import type { CheckedJob } from "../api/checked_job.ts";
import type { ResolvedOptions } from "../api/options.ts";
import { type ResultsMessage, startResults } from "./results_actor.ts";
import { makeBackendRoot } from "../_backend_root.ts";
import { markKept, type WorkRoot } from "../_work_root.ts";
import type { Backend, BackendEvent, BackendSettings } from "../backend.ts";
import { jobDirName } from "./job/dir.ts";
import { ForkRunner } from "./runners/fork.ts";
import { PoolRunner } from "./runners/pool.ts";
import { ProcessRunner } from "./runners/process.ts";
import type { Runner } from "./runners/runner.ts";
import { systemClock } from "./clock.ts";
import { type JobEvent, startSupervisor, type SupervisorMessage } from "./supervisor.ts";
import type { ManagerHealth } from "../types.ts";

/** Jobs in Blenders on this machine. */
export class LocalBackend implements Backend {
  readonly workRoot: string;
  readonly jobScripts: string;
  readonly sharesFiles = true;
  readonly sharedNames = false;
  #health: ManagerHealth = { status: "ok" };
  #maxWorkers: number;
  /** The jobs whose attempt runs now. */
  readonly #running = new Set<string>();
  readonly #root: WorkRoot;
  readonly #keepFiles: boolean;
  readonly #runner: Runner;
  readonly #results: ActorRef<ResultsMessage>;
  readonly #supervisor: ActorRef<SupervisorMessage>;
  readonly #publish: (event: BackendEvent) => void;
  #submitted = 0;
  #closing: Promise<void> | undefined;

  /** Make the work root and the runner (no Blender starts until a job, or `prewarm`). */
  constructor(options: ResolvedOptions, blender: string, publish: (event: BackendEvent) => void) {
    this.#publish = publish;
    this.#keepFiles = options.keepFiles;
    this.#maxWorkers = options.maxWorkers;
    const made = makeBackendRoot(options.workDir);
    this.#root = made.root;
    this.workRoot = made.root.path;
    this.jobScripts = made.jobScripts;
    try {
      this.#runner = makeRunner(options, blender, made.runtimeEntry, this.workRoot, () => this.#maxWorkers);
    } catch (error) {
      made.undo();
      throw error;
    }
    // A Results actor that failed rejects later asks with the cause: nothing more to do here.
    this.#results = startResults(() => {});
    this.#supervisor = startSupervisor({
      maxWorkers: options.maxWorkers,
      maxAttempts: options.maxAttempts,
      retry: options.retry,
      intensity: options.intensity,
      clock: systemClock,
      mode: options.mode,
      gpus: options.gpus,
      jobsRoot: join(this.workRoot, "jobs"),
      resultsRoot: join(this.workRoot, "results"),
      outputLimit: options.outputLimit,
      resultLimit: options.resultLimit,
      keepFiles: options.keepFiles,
      runner: this.#runner,
      results: this.#results,
      publish: (event) => this.#onEvent(event),
      publishHealth: (health) => {
        this.#health = health;
        publish({ type: "health", health });
      },
    });
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  get health(): ManagerHealth {
    return this.#health;
  }

  get availableWorkers(): number {
    return Math.max(0, this.#maxWorkers - this.#running.size);
  }

  submit(job: CheckedJob): void {
    const specJson = `{"version":1,"name":${JSON.stringify(job.name)},"script":${JSON.stringify(job.script)},` +
      `"blendFile":${JSON.stringify(job.blendFile)},"args":${JSON.stringify(job.args)},` +
      `"passedDataBlocks":${JSON.stringify(job.passedDataBlocks)},"factoryStartup":${job.factoryStartup},` +
      `"addons":${JSON.stringify(job.addons)},"progress":"${job.progress}","keepFiles":${this.#keepFiles},` +
      `"pathRoot":${JSON.stringify(job.pathRoot)},"notes":${JSON.stringify(job.notes)},` +
      `"passedData":${job.passedDataJson}}`;
    const { name, blendFile, timeoutMs, logFile, factoryStartup, outputDir, maxAttempts, inputs, addedMs, trace } = job;
    const { priority } = job;
    const dir = jobDirName(++this.#submitted, name);
    this.#supervisor.tell({
      type: "submit",
      job: {
        name,
        dir,
        specJson,
        blendFile,
        timeoutMs,
        logFile,
        factoryStartup,
        outputDir,
        maxAttempts,
        inputs,
        addedMs,
        trace,
        priority,
      },
    });
  }

  async kill(name: string): Promise<void> {
    if (this.#closing !== undefined) return await this.#closing; // close() kills everything.
    await this.#supervisor.ask<void>((reply) => ({ type: "kill", name, reply }));
  }

  async reprioritize(name: string, priority: number): Promise<boolean> {
    if (this.#closing !== undefined) return false;
    return await this.#supervisor.ask<boolean>((reply) => ({ type: "reprioritize", name, priority, reply }));
  }

  async killAll(): Promise<void> {
    if (this.#closing !== undefined) return await this.#closing;
    await this.#supervisor.ask<void>((reply) => ({ type: "killAll", reply }));
  }

  forget(name: string): Promise<void> {
    this.#results.tell({ type: "remove", name });
    return Promise.resolve();
  }

  wantLogs(): void {}

  configure(settings: BackendSettings): void {
    if (settings.maxWorkers !== undefined) this.#maxWorkers = settings.maxWorkers;
    this.#supervisor.tell({ type: "configure", ...settings });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#supervisor.ask<void>((reply) => ({ type: "close", reply }));
      await this.#supervisor.stop();
      await this.#runner.close();
      // The Results actor holds no resources: python_data stays readable after close.
      if (this.#keepFiles) markKept(this.workRoot);
      else await Deno.remove(this.workRoot, { recursive: true }).catch(() => {});
      this.#root.release();
    })();
    return this.#closing;
  }

  #onEvent(event: JobEvent): void {
    const { name } = event;
    switch (event.type) {
      case "started":
        this.#running.add(name);
        return this.#publish(event);
      case "retrying":
        this.#running.delete(name);
        return this.#publish({ type: "retrying", name });
      case "completed": {
        this.#running.delete(name);
        const { result } = event;
        return this.#publish({
          type: "completed",
          name,
          attempts: result.attempts,
          timings: result.timings,
          load: () => Promise.resolve(result),
        });
      }
      case "dropped":
        this.#running.delete(name);
        return this.#publish(event);
      default:
        return this.#publish(event);
    }
  }
}

/** The runner of `options.mode`. */
function makeRunner(
  options: ResolvedOptions,
  blender: string,
  runtimeEntry: string,
  workRoot: string,
  maxWorkers: () => number,
): Runner {
  if (options.mode === "process") return new ProcessRunner({ blender, runtimeEntry });
  if (options.mode === "fork") {
    const fork = new ForkRunner({ blender, runtimeEntry, factoryStartup: options.factoryStartup });
    if (options.prewarm) fork.prewarm();
    return fork;
  }
  const pool = new PoolRunner({
    blender,
    runtimeEntry,
    dir: join(workRoot, "pool"),
    maxJobsPerWorker: options.maxJobsPerWorker,
    maxWorkerMemoryMiB: options.maxWorkerMemoryMiB,
    factoryStartup: options.factoryStartup,
    addons: options.addons,
    maxWorkers,
  });
  if (options.prewarm) pool.prewarm(options.maxWorkers);
  return pool;
}
