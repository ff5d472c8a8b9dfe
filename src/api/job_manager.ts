/** The facade: the typed async API over the actors; the only thing users touch. */

import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { checkJob, type JobDefaults } from "./checked_job.ts";
import { JobHandle } from "./job.ts";
import { ManagerEvents } from "./manager_events.ts";
import { checkPermissions, resolveOptions } from "./options.ts";
import { checkFileTarget, checkInteger, checkJobName, checkPassedDataBlocks } from "../_validate.ts";
import { type Backend, type BackendEvent, BACKENDS } from "../backend.ts";
import { blenderVersion, findBlender } from "../blender.ts";
import { type DropReason, InvalidJobError } from "../errors.ts";
import { LocalBackend } from "../local/backend.ts";
import { type JobManagerNatsOptions, NatsBackend } from "../nats/_backend.ts";
import { type Render, type RenderOptions, startRender } from "../render/render.ts";
import type {
  DataBlockCollection,
  DataBlocks,
  DataBlockSelection,
  JobCounts,
  JobResult,
  JobState,
  JsonObject,
  LogLine,
  ManagerEvent,
  ManagerHealth,
} from "../types.ts";

/**
 * Where a job's progress comes from: its script (`"script"`), Blender's renders (`"render"`), or renders until
 * the script first reports (`"auto"`). See {@linkcode JobManagerOptions.progress}.
 *
 * @example
 * ```ts ignore
 * import { JobManager, type ProgressSource } from "@bgproc/blender";
 *
 * const progress: ProgressSource = "render";
 * await using manager = new JobManager({ progress });
 * ```
 */
export type ProgressSource = "auto" | "script" | "render";

/** Options of {@linkcode JobManager}. */
export interface JobManagerOptions {
  /**
   * How many Blender processes may run at once.
   *
   * @default {2}
   */
  maxWorkers?: number;
  /**
   * How many times a job is started before it is dropped: a job that fails
   * (its script raises, Blender crashes or it times out) is retried until it
   * has had this many attempts. A killed job is never retried.
   *
   * @default {1}
   */
  maxAttempts?: number;
  /**
   * The default per-attempt timeout of jobs, in milliseconds; 0 means none.
   *
   * @default {0}
   */
  timeout?: number;
  /**
   * The Blender executable.
   *
   * @default {$BLENDER, else `blender` on PATH}
   */
  blender?: string;
  /**
   * The folder in which the manager makes its own work root (one fresh
   * folder per manager, removed by `close()`).
   *
   * @default {the system's temporary folder}
   */
  workDir?: string;
  /**
   * Keep the work root and every job directory after jobs end and after
   * `close()`, for debugging.
   *
   * @default {false}
   */
  keepFiles?: boolean;
  /**
   * How many characters of each job's stdout and of its stderr to keep (the
   * last ones).
   *
   * @default {1048576}
   */
  outputLimit?: number;
  /**
   * The largest `result.json` (a job's `python_data` and data-block
   * manifest), in bytes, the manager reads: a larger one drops the job with
   * reason `"result-too-large"`, checked before it is read.
   *
   * @default {67108864}
   */
  resultLimit?: number;
  /**
   * `"process"`: one fresh Blender per job (full isolation; a Blender
   * start-up per job). `"pool"`: up to `maxWorkers` warm Blenders that run
   * many jobs each, resetting Blender's data between jobs (an empty scene, or
   * the job's .blend file) and running each script in fresh globals: the
   * per-job overhead is milliseconds. What one script does to the Python
   * process beyond Blender's data (modules it imported, globals of those
   * modules) stays for the next job on that worker. `"fork"`: a warm
   * *zygote* Blender, which never runs user code, forks a fresh child per
   * job: the isolation of process mode (everything a job did dies with its
   * child) at a few milliseconds per job. On a Blender where forking is
   * unsafe, fork mode runs jobs in process mode and says so in each job's
   * output.
   *
   * @default {"process"}
   */
  mode?: "process" | "pool" | "fork";
  /**
   * Pool mode: retire a worker after this many jobs.
   *
   * @default {100}
   */
  maxJobsPerWorker?: number;
  /**
   * Pool mode: retire a worker whose resident memory is above this many MiB
   * after a job.
   *
   * @default {2048}
   */
  maxWorkerMemoryMiB?: number;
  /**
   * Pool mode: start `maxWorkers` workers now instead of on the first jobs.
   * Fork mode: start the zygote now.
   *
   * @default {false}
   */
  prewarm?: boolean;
  /**
   * Start Blender with `--factory-startup`: no user preferences, none of the add-ons they enable, and the user's
   * `scripts/modules` not on `sys.path`, so a job runs the same on every machine. `false` starts Blender as a plain
   * `blender -b` does (as the add-on did), with the user's preferences (`BLENDER_USER_CONFIG`), their enabled
   * add-ons and their scripts (`BLENDER_USER_SCRIPTS`). A job may set its own. In pool mode workers are kept per
   * setting (a job runs on a worker started the way it asks; an idle worker of the other setting is retired when a
   * new one would exceed `maxWorkers`); in fork mode there is a zygote per setting.
   *
   * @default {true}
   *
   * @example Run jobs with the user's preferences and add-ons
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager({ factoryStartup: false });
   * ```
   */
  factoryStartup?: boolean;
  /**
   * Add-ons (module names, e.g. `"node_wrangler"`, or an extension's `"bl_ext.blender_org.looptools"`) that every
   * job enables before its script runs; a job's own `addons` are added to these. A job whose add-on is missing or
   * fails to enable is dropped with reason `"error"` and a report naming the add-on (`AddonError`).
   *
   * @default {[]}
   *
   * @example Enable Node Wrangler for every job
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager({ addons: ["node_wrangler"] });
   * ```
   */
  addons?: readonly string[];
  /**
   * Where a job's progress comes from: `"script"`, its `update_job_progress` calls only; `"render"`, Blender's
   * renders only (the script's calls are ignored); `"auto"`, renders until the script first reports, then the
   * script. A render's progress is (frames done + the current frame's samples done) / frames, the frames being
   * the scene's range for an animation and 1 for a still; Blender 3.4 does not tell Python the samples, so there
   * it moves once per frame.
   *
   * @default {"auto"}
   *
   * @example Show render progress for scripts that only call `bpy.ops.render.render`
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager({ progress: "render" });
   * ```
   */
  progress?: ProgressSource;
  /**
   * Where every job's outputs go, unless the job names its own `outputDir`: the files it wrote into its folder
   * (Blender's `//` paths), with their relative paths (`//renders/frame_0001.png` becomes
   * `<outputDir>/renders/frame_0001.png`); files of the same name are replaced. Made when the first output arrives.
   *
   * @default {none: outputs stay in the manager's work root until `removeJob` or `close()`}
   *
   * @example Keep every job's renders
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager({ outputDir: "./renders" });
   * ```
   */
  outputDir?: string;
  /** Which failures are retried (while attempts remain), and how long to wait first. */
  retry?: RetryOptions;
  /**
   * How often Blender may fail at start-up (before it reaches bgproc's Python
   * runtime: a broken binary, a bad `BLENDER`, a crash while starting) before
   * the manager stops starting it: more than `maxFailures` in `periodMs` makes
   * `health` `"failing"`, and jobs are dropped with reason `"start-failed"`
   * instead of started until the period has passed.
   */
  restartIntensity?: RestartIntensityOptions;
  /**
   * Run the jobs on NATS workers (`bgproc worker`) instead of local Blenders:
   * the same API, over the cluster. `maxAttempts` (default 3 here: a worker
   * lost mid-job costs an attempt) and `timeout` apply; the
   * options of local Blenders do not. The NATS client is loaded when this is
   * given (a `NatsBackendUnavailableError` from `result()` when it cannot
   * be). Before the connection is up, `addJob` checks only the name and
   * reports a bad option through the job's `result()`.
   *
   * @example `new JobManager({ nats: { servers: "nats://127.0.0.1:4222", namespace: "shots" } })`
   */
  nats?: JobManagerNatsOptions;
}

/** Options of {@linkcode JobManagerOptions.retry}. */
export interface RetryOptions {
  /**
   * The reasons a failed attempt is retried for (while `maxAttempts` allows).
   * `"killed"` is never retried.
   *
   * @default {["error", "crashed", "timed-out", "start-failed"]}
   */
  on?: readonly DropReason[];
  /**
   * The wait before the first retry, in milliseconds.
   *
   * @default {250}
   */
  delayMs?: number;
  /**
   * Each further retry waits this many times longer.
   *
   * @default {2}
   */
  factor?: number;
  /**
   * The longest wait, in milliseconds.
   *
   * @default {30000}
   */
  maxDelayMs?: number;
}

/** Options of {@linkcode JobManagerOptions.restartIntensity}. */
export interface RestartIntensityOptions {
  /**
   * How many start-up failures are tolerated within `periodMs`.
   *
   * @default {5}
   */
  maxFailures?: number;
  /**
   * The period, in milliseconds.
   *
   * @default {10000}
   */
  periodMs?: number;
}

/** Options of {@linkcode JobManager.addJob}. */
export interface AddJobOptions {
  /** The Python script to run inside Blender. */
  script: string;
  /**
   * The job's name: 1 to 128 printable Unicode characters (code points), without `/`, `\`, control characters,
   * a leading `.` or white space at either end (`"test1.py_Würfel"`, `"レンダー 010"`). The job's directory is named
   * from it safely (an ASCII prefix and a hash). No queued or active job may have it; an ended job of that name is
   * replaced.
   *
   * @default {a generated unique name, `job-<n>`}
   */
  name?: string;
  /**
   * Data for the script: a JSON object, available to it as `passed_data`
   * and, key by key, as variables.
   *
   * @default {{}}
   */
  passedData?: JsonObject;
  /**
   * A .blend file to open first. The job works on a private copy (with
   * relative paths remapped), so the file itself is never changed. Without
   * it, the script starts in an empty scene.
   */
  blendFile?: string;
  /**
   * This job's per-attempt timeout in milliseconds; 0 means none.
   *
   * @default {the manager's `timeout`}
   */
  timeout?: number;
  /**
   * Arguments for the script, in `sys.argv` after `--`, as with
   * `blender -b --python script.py -- ARGS`.
   *
   * @default {[]}
   */
  args?: string[];
  /** Kills the job (queued or running) when aborted. */
  signal?: AbortSignal;
  /**
   * How many times this job is started before it is dropped (see {@linkcode JobManagerOptions.maxAttempts}).
   *
   * @default {the manager's `maxAttempts` when an attempt ends}
   *
   * @example Give one flaky job three attempts
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager();
   * manager.addJob({ script: "./download_textures.py", maxAttempts: 3 });
   * ```
   */
  maxAttempts?: number;
  /**
   * Tags the worker must have (each of them), over NATS: the job waits for a `bgproc worker --tags` that has
   * them all. Local Blenders stand in for every tag: a local manager runs the job as any other.
   *
   * @default {[]}
   *
   * @example A job for a worker with a GPU
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager({ nats: { servers: "nats://127.0.0.1:4222" } });
   * manager.addJob({ script: "./bake.py", requires: ["gpu"] });
   * ```
   */
  requires?: readonly string[];
  /**
   * Data blocks to pass in: they are appended (with what they use) before the
   * script runs, and listed in `passed_data_blocks` in the order given, then
   * what they brought with them (meshes, materials, ...). Names the file
   * does not hold are rejected here, before anything starts.
   */
  passedDataBlocks?: DataBlockSelection | DataBlocks;
  /**
   * Start this job's Blender with `--factory-startup` (`true`) or as a plain `blender -b`, with the user's
   * preferences, add-ons and scripts (`false`). See {@linkcode JobManagerOptions.factoryStartup}.
   *
   * @default {the manager's `factoryStartup`}
   */
  factoryStartup?: boolean;
  /**
   * Add-ons to enable before the script runs (module names, e.g. `["node_wrangler"]`), after the manager's
   * `addons`. Each is enabled as the user would in Preferences (`addon_utils.enable`, `default_set`): a missing one,
   * or one whose `register()` fails, drops the job with reason `"error"`, a `pythonError` of type `AddonError`
   * and a summary naming it. In pool mode workers enable the manager's `addons` when they start; a job that enables
   * more retires its worker afterwards (add-ons cannot be unloaded cleanly), so the next job never inherits them. In
   * process and fork mode they die with the job.
   *
   * @default {[]}
   *
   * @example A job that needs Node Wrangler, with the user's preferences
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager();
   * manager.addJob({ script: "./nodes.py", addons: ["node_wrangler"], factoryStartup: false });
   * ```
   */
  addons?: readonly string[];
  /**
   * Where this job's progress comes from. See {@linkcode JobManagerOptions.progress}.
   *
   * @default {the manager's `progress`}
   */
  progress?: ProgressSource;
  /**
   * Where this job's outputs go (see {@linkcode JobResult.outputs}), with their relative paths kept.
   *
   * @default {the manager's `outputDir`, else a folder in its work root kept until `removeJob` or `close()`}
   */
  outputDir?: string;
  /**
   * A file to append the job's output to, line by line (stdout and stderr as
   * they come, after a header line per attempt). Its folder must exist.
   */
  logFile?: string;
}

/** Options of {@linkcode JobManager.appendDataBlocks}. */
export interface AppendDataBlocksOptions {
  /** The .blend file to append into; it is made (from an empty scene) when it does not exist. */
  into: string;
  /**
   * Replace blocks of the same name, as the add-on's `overwrite_data` did:
   * for every block the append brings (the named ones and what they use:
   * meshes, materials, ...), the users of the target's same-named block are
   * remapped to it and the old block is removed, so the new blocks keep their
   * names and appending twice changes nothing. Otherwise Blender's usual
   * `.001` naming applies.
   *
   * @default {false}
   */
  overwrite?: boolean;
  /**
   * Link the blocks from their library instead of appending copies (the
   * library must then outlive this manager: a job's library does not).
   *
   * @default {false}
   */
  link?: boolean;
  /** Kills the append job when aborted. */
  signal?: AbortSignal;
  /** The append job's timeout in milliseconds; 0 means none. @default {the manager's `timeout`} */
  timeout?: number;
}

/** What {@linkcode JobManager.appendDataBlocks} did. */
export interface AppendDataBlocksResult {
  /** The target .blend file. */
  readonly into: string;
  /** Per collection, the names the blocks ended up with in the target, in the order given. */
  readonly names: { readonly [C in DataBlockCollection]?: readonly string[] };
}

/** Options of {@linkcode JobManager.getJobNames}. */
export interface GetJobNamesOptions {
  /** Only the jobs in this state. */
  state?: JobState;
}

/**
 * One job, as {@linkcode JobManager.addJob} returns it: its live state and
 * progress, and its result.
 */
export interface Job<T extends JsonObject = JsonObject> {
  /** The job's name. */
  readonly name: string;
  /** Its state now. */
  readonly state: JobState;
  /** Its progress now, 0 to 1. */
  readonly progress: number;
  /** How many attempts have been started. */
  readonly attempts: number;
  /**
   * The job's progress values as they arrive, rising, ending when the job
   * ends (with 1 when it completes). Starts with the current value if it is
   * above 0.
   */
  progressUpdates(): AsyncIterableIterator<number>;
  /**
   * The job's result once it completes.
   *
   * @throws {JobDroppedError} When the job is dropped. Its message says where the script failed
   * (`... (error) at raises.py:4: ...`), and its stack is taken where this promise is awaited: it ends at your
   * `await job.result()`, not inside bgproc.
   */
  result(): Promise<JobResult<T>>;
  /**
   * The job's output lines as they arrive, from now until the job ends. A
   * reader that falls 10,000 lines behind loses the oldest (a line says so).
   */
  logs(): AsyncIterableIterator<LogLine>;
  /** Kill the job; settles once its Blender process is gone. */
  kill(): Promise<void>;
}

/**
 * Runs Blender Python scripts in background Blender processes: queues jobs,
 * runs up to `maxWorkers` at once, retries failures up to `maxAttempts`,
 * reports progress, and returns each script's `python_data`.
 *
 * @example Run a script and read its result
 * ```ts ignore
 * import { JobManager } from "@bgproc/blender";
 *
 * await using manager = new JobManager({ maxWorkers: 2 });
 * const job = manager.addJob({ script: "./examples/scripts/add_monkey.py", passedData: { size: 2 } });
 * for await (const progress of job.progressUpdates()) console.log(progress);
 * console.log((await job.result()).pythonData);
 * ```
 */
export class JobManager implements AsyncDisposable {
  /** `"process"` (a Blender per job), `"pool"` (warm workers) or `"fork"` (a child of a warm zygote per job). */
  readonly mode: "process" | "pool" | "fork";
  /** The Blender executable in use (`""` with `nats`: the workers have theirs). */
  readonly blenderPath: string;
  #blenderVersion: Promise<string> | undefined;
  /** This manager's own work root. */
  readonly workRoot: string;
  readonly #backend: Backend;
  #maxWorkers: number;
  #maxAttempts: number;
  readonly #defaults: JobDefaults;
  readonly #jobs = new Map<string, JobHandle>();
  readonly #events = new ManagerEvents();
  #closing: Promise<void> | undefined;
  /** With a cluster: the local Blenders `appendDataBlocks` writes this host's files with. */
  #hostBlenders: JobManager | undefined;
  #nextName = 1;

  /**
   * Make a manager: checks every option, finds Blender and makes the work
   * root, but starts no Blender until a job is added (or `prewarm`). Nothing
   * is made on disk when an option is wrong.
   *
   * @param options How many workers and attempts, which Blender, where to work.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When an option is out of range.
   * @throws {Deno.errors.NotCapable} When a permission it needs is missing (the message names the flag).
   * @throws {BlenderNotFoundError} When no Blender executable is found.
   * @throws {WorkRootError} When the work root cannot be made in `workDir`.
   */
  constructor(options: JobManagerOptions = {}) {
    const resolved = resolveOptions(options);
    this.#maxWorkers = resolved.maxWorkers;
    this.#maxAttempts = resolved.maxAttempts;
    this.#defaults = {
      timeoutMs: resolved.timeout,
      outputDir: resolved.outputDir,
      factoryStartup: resolved.factoryStartup,
      addons: resolved.addons,
      progress: resolved.progress,
    };
    this.mode = resolved.mode;
    const publish = (event: BackendEvent) => this.#onEvent(event);
    if (options.nats !== undefined) {
      // Over NATS a lost worker costs an attempt: 3 unless given.
      this.#maxAttempts = options.maxAttempts === undefined ? 3 : this.#maxAttempts;
      this.blenderPath = "";
      this.#backend = new NatsBackend(options.nats, { ...resolved, maxAttempts: this.#maxAttempts }, publish);
    } else {
      this.blenderPath = findBlender(resolved.blender === undefined ? {} : { blender: resolved.blender });
      checkPermissions(resolved.mode, this.blenderPath, resolved.workDir ?? tmpdir());
      this.#backend = new LocalBackend(resolved, this.blenderPath, publish);
    }
    this.workRoot = this.#backend.workRoot;
    BACKENDS.set(this, this.#backend);
  }

  /**
   * How many attempts may run at once. Setting it takes effect at once:
   * queued jobs start when it grows; running ones finish when it shrinks.
   *
   * @throws {RangeError} On set, unless an integer >= 1.
   */
  get maxWorkers(): number {
    return this.#maxWorkers;
  }

  set maxWorkers(value: number) {
    const maxWorkers = checkInteger("Cannot set maxWorkers", "maxWorkers", value, 1);
    this.#backend.configure({ maxWorkers });
    this.#maxWorkers = maxWorkers;
  }

  /**
   * How many attempts a job gets before it is dropped. Setting it applies to
   * every job whose attempt ends from now on.
   *
   * @throws {RangeError} On set, unless an integer >= 1.
   */
  get maxAttempts(): number {
    return this.#maxAttempts;
  }

  set maxAttempts(value: number) {
    this.#maxAttempts = checkInteger("Cannot set maxAttempts", "maxAttempts", value, 1);
    this.#backend.configure({ maxAttempts: value });
  }

  /**
   * Settles once the manager can take jobs: at once for local Blenders; with
   * `nats`, once connected and every job of the namespace is known (so
   * `getJob` finds jobs another host added).
   *
   * @returns Settles when ready.
   * @throws {NatsConnectionError} With `nats`, when the server cannot be reached.
   * @throws {NatsBackendUnavailableError} With `nats`, when the NATS client cannot be loaded.
   *
   * @example Wait for the cluster before reading a job another host added
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager({ nats: { servers: "nats://127.0.0.1:4222" } });
   * await manager.ready();
   * console.log(manager.getJob("shot-010")?.state);
   * ```
   */
  async ready(): Promise<void> {
    await this.#backend.ready();
  }

  /**
   * Every job's state changes, progress and output lines, and the manager's
   * health, from now on. The iterator ends when `signal` aborts, when its
   * `return()` is called (`break` in `for await`), or when the manager
   * closes. A reader 10,000 events behind loses its oldest progress and log
   * events; one that falls that far behind on state events alone gets a
   * `RangeError`.
   *
   * @param options `signal` to stop following.
   * @returns An async iterator of {@linkcode ManagerEvent}s.
   *
   * @example Print each job's state changes
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager();
   * const controller = new AbortController();
   * manager.addJob({ script: "./examples/scripts/hello.py" });
   * for await (const event of manager.events({ signal: controller.signal })) {
   *   if (event.type === "state") console.log(event.name, event.state);
   *   if (event.type === "state" && event.state === "COMPLETED") controller.abort();
   * }
   * ```
   */
  events(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<ManagerEvent> {
    this.#backend.wantLogs();
    return this.#events.subscribe(options.signal);
  }

  /**
   * Queue a job. Everything is checked first: a bad name, a missing script or
   * .blend file, or data JSON cannot carry throws, and nothing is queued.
   *
   * @param options The script, its data, and how to run it.
   * @returns The job, whose `result()` settles when it ends.
   * @throws {InvalidJobError} When an option is wrong; nothing is queued.
   * @throws {Error} When the manager is closed.
   */
  addJob<T extends JsonObject = JsonObject>(options: AddJobOptions): Job<T> {
    if (this.#closing !== undefined) throw new Error("Cannot add job as the JobManager is closed");
    if (typeof options !== "object" || options === null) {
      throw new InvalidJobError("options", "Cannot add job as its options must be an object");
    }
    options.signal?.throwIfAborted();
    const name = options.name === undefined ? this.#generateName() : checkJobName(options.name);
    const previous = this.#jobs.get(name);
    if (previous !== undefined && !previous.ended) {
      throw new InvalidJobError("name", `Cannot add job as a job named '${name}' is ${previous.state}`);
    }
    const job = checkJob(name, options, this.#defaults);
    if (previous !== undefined) this.removeJob(name); // As the add-on did: a new job replaces an ended one.
    const handle = this.#handle<T>(name);
    this.#jobs.set(name, handle as JobHandle);
    this.#events.publish({ type: "state", name, state: "QUEUED", attempt: 0 });
    this.#backend.submit(job);
    if (options.signal !== undefined) handle.killOnAbort(options.signal);
    return handle;
  }

  /**
   * The job named `name`, or `undefined`.
   *
   * @param name A job's name.
   * @returns The job, or `undefined` when the manager has none of that name.
   */
  getJob(name: string): Job | undefined {
    return this.#jobs.get(name);
  }

  /**
   * The state of a job.
   *
   * @param name A job's name.
   * @returns `"QUEUED"`, `"ACTIVE"`, `"COMPLETED"` or `"DROPPED"`.
   * @throws {RangeError} When there is no job of that name.
   */
  getJobState(name: string): JobState {
    return this.#job(name).state;
  }

  /**
   * The progress of a job, 0 to 1.
   *
   * @param name A job's name.
   * @returns The latest progress the job's script reported (1 once it completed).
   * @throws {RangeError} When there is no job of that name.
   */
  getJobProgress(name: string): number {
    return this.#job(name).progress;
  }

  /**
   * The `python_data` of a completed job.
   *
   * @param name A job's name.
   * @returns The dict the script set as `python_data`.
   * @throws {RangeError} When there is no job of that name, or it has not completed.
   */
  async getRetrievedPythonData<T extends JsonObject = JsonObject>(name: string): Promise<T> {
    await this.#backend.ready(); // A cluster's jobs are known once connected.
    return (await this.#completed(name, "python_data").result()).pythonData as T;
  }

  /**
   * The data blocks a completed job returned in `data_blocks`, grouped by
   * collection, with the library .blend that holds them.
   *
   * @param name A job's name.
   * @returns The data blocks, or `null` when the script set none.
   * @throws {RangeError} When there is no job of that name, or it has not completed.
   */
  async getRetrievedDataBlocks(name: string): Promise<DataBlocks | null> {
    await this.#backend.ready();
    return (await this.#completed(name, "data_blocks").result()).dataBlocks;
  }

  /**
   * Append (or link) data blocks into a .blend file and save it, in a
   * Blender job of its own: a job's `dataBlocks`, or a selection from any
   * .blend file. The job writes the file on this host: with `nats` it runs in
   * a Blender here (made on first use, closed with the manager), not on a
   * worker, so the host needs Blender for it.
   *
   * @param blocks The blocks: a job's `dataBlocks`, or `{ from, objects?, materials?, ... }`.
   * @param options The target file, and whether to overwrite same-named blocks or link.
   * @returns The names the blocks ended up with in the target.
   * @throws {InvalidJobError} When the blocks or the target are not usable; nothing starts.
   * @throws {JobDroppedError} When the append job fails.
   * @throws {BlenderNotFoundError} With `nats`, when this host has no Blender.
   */
  async appendDataBlocks(
    blocks: DataBlocks | DataBlockSelection,
    options: AppendDataBlocksOptions,
  ): Promise<AppendDataBlocksResult> {
    if (!this.#backend.sharesFiles) {
      // The job writes `into` on this host: with a cluster it runs in a Blender here (made on first use).
      if (this.#closing !== undefined) throw new Error("Cannot append as the JobManager is closed");
      this.#hostBlenders ??= new JobManager({ maxWorkers: 1, workDir: this.workRoot });
      return await this.#hostBlenders.appendDataBlocks(blocks, options);
    }
    const selection = checkPassedDataBlocks(blocks, "blocks");
    const into = resolve(checkFileTarget(options.into, "into"));
    if (existsSync(into)) checkPassedDataBlocks({ from: into }, "into");
    if (selection === null) return { into, names: {} };
    let name: string;
    do name = `append-${this.#nextName++}`; while (this.#jobs.has(name));
    const job = this.addJob({
      name,
      script: join(this.#backend.jobScripts, "append_job.py"),
      passedData: {
        library: selection.path,
        blocks: selection.blocks as JsonObject,
        into,
        overwrite: options.overwrite ?? false,
        link: options.link ?? false,
      },
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    });
    try {
      const { pythonData } = await job.result();
      return { into, names: pythonData.names as AppendDataBlocksResult["names"] };
    } finally {
      if (this.#jobs.get(name) === job) this.removeJob(name);
    }
  }

  /**
   * Render frames of a .blend file, as a render farm does: the frames are split into chunk jobs (`chunk`
   * frames each) that run in parallel on this manager's workers (local Blenders, or a cluster's workers), retried
   * by its `maxAttempts` policy; each chunk renders into its own job folder and its frames come back into
   * `outputDir` as its outputs. The render reports one progress and one result with every frame's file; with
   * `video` (local Blenders only, for now), Blender's sequencer then makes a video of the frames in one more job.
   *
   * @param options The .blend file, the frames, the chunk size, the output folder and the overrides.
   * @returns The render: its progress, its chunk jobs, its result.
   * @throws {InvalidJobError} When an option is wrong (the frame list's grammar included); nothing starts.
   * @throws {Error} When the manager is closed.
   *
   * @example Render 48 frames in chunks of 8
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager({ maxWorkers: 2, maxAttempts: 2 });
   * const render = manager.render({ blendFile: "shot.blend", frames: "1-48", chunk: 8, outputDir: "out" });
   * for await (const { framesDone, frameCount } of render.progressUpdates()) console.log(`${framesDone}/${frameCount}`);
   * console.log((await render.result()).frames.map((frame) => frame.path));
   * ```
   */
  render(options: RenderOptions): Render {
    if (this.#closing !== undefined) throw new Error("Cannot render as the JobManager is closed");
    return startRender(this, {
      chunkScript: join(this.#backend.jobScripts, "render_chunk.py"),
      videoScript: join(this.#backend.jobScripts, "render_video.py"),
      rendersDir: join(this.workRoot, "renders"),
      defaultName: `render-${this.#nextName++}`,
      sharesFiles: this.#backend.sharesFiles,
    }, options);
  }

  /**
   * The report of a dropped job: why, the Python traceback, the tail of
   * Blender's stderr, the command line.
   *
   * @param name A job's name.
   * @returns The report, or `undefined` when the job was not dropped.
   * @throws {RangeError} When there is no job of that name.
   */
  getIssueString(name: string): string | undefined {
    return this.#job(name).report;
  }

  /**
   * Kill a job: a queued one is dropped, a running one's Blender is killed.
   * Either way the job ends as DROPPED with reason `"killed"`.
   *
   * @param name A job's name.
   * @returns Settles once the job's Blender process is gone.
   * @throws {RangeError} When there is no job of that name.
   */
  async killJob(name: string): Promise<void> {
    this.#job(name);
    await this.#backend.kill(name);
  }

  /**
   * Kill every queued and running job.
   *
   * @returns Settles once every Blender process of this manager is gone.
   */
  async killAll(): Promise<void> {
    await this.#backend.killAll();
  }

  /**
   * The names of the manager's jobs, in the order they were added.
   *
   * @param options `state` to list only the jobs in that state.
   * @returns The names.
   */
  getJobNames(options: GetJobNamesOptions = {}): string[] {
    const names: string[] = [];
    for (const [name, job] of this.#jobs) {
      if (options.state === undefined || job.state === options.state) names.push(name);
    }
    return names;
  }

  /** How many jobs are in each state, and how many workers are free. */
  get counts(): JobCounts {
    const counts = { queued: 0, active: 0, completed: 0, dropped: 0 };
    for (const job of this.#jobs.values()) {
      switch (job.state) {
        case "QUEUED":
          counts.queued++;
          break;
        case "ACTIVE":
          counts.active++;
          break;
        case "COMPLETED":
          counts.completed++;
          break;
        case "DROPPED":
          counts.dropped++;
          break;
      }
    }
    return { ...counts, availableWorkers: this.#backend.availableWorkers };
  }

  /**
   * The version of the Blender in use, as it prints it (`"5.2.2 LTS"`):
   * asked once (`blender --version`), then remembered. A dropped job's
   * report also names the Blender and Python its attempt ran in.
   *
   * @returns The version, or `"unknown"` when Blender printed none.
   * @throws {Deno.errors.NotFound} When the Blender executable has gone since the manager found it.
   *
   * @example Log the Blender a manager runs
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager();
   * console.log(`Blender ${await manager.blenderVersion()} at ${manager.blenderPath}`);
   * ```
   */
  blenderVersion(): Promise<string> {
    this.#blenderVersion ??= blenderVersion(this.blenderPath);
    return this.#blenderVersion;
  }

  /**
   * Whether the manager can start Blender: `"ok"`, or `"failing"` (with the
   * reason and when it tries again) after too many start-up failures.
   */
  get health(): ManagerHealth {
    return this.#backend.health;
  }

  /**
   * Forget a job that has ended, with its result, so its name can be used
   * again. Long-lived managers call this to keep memory flat.
   *
   * @param name A job's name.
   * @throws {RangeError} When there is no job of that name.
   * @throws {Error} When the job has not ended yet.
   */
  removeJob(name: string): void {
    const job = this.#job(name);
    if (job.state !== "COMPLETED" && job.state !== "DROPPED") {
      throw new Error(`Cannot remove job '${name}' as it is ${job.state}: kill it first`);
    }
    this.#jobs.delete(name);
    this.#backend.forget(name).catch(() => {});
  }

  /**
   * Kill every job, wait for every Blender process to exit, and remove the
   * work root (unless `keepFiles`). Calling it again returns the same promise.
   *
   * @returns Settles once everything is stopped and removed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#hostBlenders?.close();
        await this.#backend.close();
      } finally {
        // What a cluster still runs goes on there; here its followers end.
        for (const job of this.#jobs.values()) job.close();
        this.#events.close();
      }
    })();
    return this.#closing;
  }

  /** Same as {@linkcode JobManager.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #completed(name: string, what: string): JobHandle {
    const job = this.#job(name);
    if (job.state !== "COMPLETED") {
      throw new RangeError(`Cannot get ${what} of job '${name}' as it is ${job.state}, not COMPLETED`);
    }
    return job;
  }

  #job(name: string): JobHandle {
    const job = this.#jobs.get(name);
    if (job === undefined) throw new RangeError(`No job named '${name}' in this JobManager`);
    return job;
  }

  #generateName(): string {
    let name: string;
    do name = `job-${this.#nextName++}`; while (this.#jobs.has(name));
    return name;
  }

  /** A handle whose kill reaches its own job only, not a later job that reused the name. */
  #handle<T extends JsonObject>(
    name: string,
    known?: { state: "QUEUED" | "ACTIVE"; attempts: number; progress: number },
  ): JobHandle<T> {
    const kill = () => this.#jobs.get(name) === handle ? this.killJob(name) : Promise.resolve();
    const wantLogs = () => this.#backend.wantLogs();
    const handle: JobHandle<T> = known === undefined
      ? new JobHandle<T>(name, kill, wantLogs)
      : JobHandle.known<T>(name, kill, wantLogs, known);
    return handle;
  }

  #onEvent(event: BackendEvent): void {
    if (event.type === "health") return this.#events.publish(event);
    const { name } = event;
    switch (event.type) {
      case "known": {
        const previous = this.#jobs.get(name);
        if (previous !== undefined && !previous.ended) return;
        this.#jobs.delete(name); // Re-inserted: the names stay in the order jobs were added.
        this.#jobs.set(name, this.#handle(name, event));
        return this.#events.publish({ type: "state", name, state: event.state, attempt: event.attempts });
      }
      case "forgotten":
        if (this.#jobs.get(name)?.ended) this.#jobs.delete(name);
        return;
      default: {
        const job = this.#jobs.get(name);
        if (job === undefined) return;
        const wasEnded = job.ended;
        job.apply(event);
        if (!wasEnded) {
          const managerEvent = toManagerEvent(event, job);
          if (managerEvent !== undefined) this.#events.publish(managerEvent);
        }
      }
    }
  }
}

/** The public event for a job's event, if it has one (a retry changes no state the public sees). */
function toManagerEvent(event: Parameters<JobHandle["apply"]>[0], job: JobHandle): ManagerEvent | undefined {
  const { name } = event;
  switch (event.type) {
    case "started":
      return { type: "state", name, state: "ACTIVE", attempt: event.attempt };
    case "progress":
      return { type: "progress", name, progress: event.value };
    case "output":
      return { type: "log", name, attempt: event.attempt, stream: event.stream, line: event.line };
    case "retrying":
      return undefined;
    case "completed":
      return { type: "state", name, state: "COMPLETED", attempt: event.attempts };
    case "dropped":
      return { type: "state", name, state: "DROPPED", attempt: event.error.attempts, reason: event.error.reason };
    case "rejected":
      return { type: "state", name, state: "DROPPED", attempt: job.attempts };
  }
}
