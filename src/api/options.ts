/**
 * `JobManager`'s options: the one table of defaults, and their validation,
 * done in full before the manager does anything on disk.
 */

import {
  addonsProblem,
  checkInteger,
  checkNumber,
  checkOutputDir,
  checkProgressSource,
  checkRetryReasons,
  MAX_DELAY_MS,
} from "../_validate.ts";
import type { DropReason } from "../errors.ts";
import type { DataBlockCollection, DataBlocks, DataBlockSelection, JobState, JsonObject } from "../types.ts";
import { type RestartIntensity, RETRYABLE_REASONS, type RetryPolicy } from "../local/policy.ts";

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
   * `"fork"` (the default): a warm *zygote* Blender, which never runs user
   * code, forks a fresh child per job: the isolation of process mode
   * (everything a job did dies with its child) at a few milliseconds per
   * job. On a Blender where forking is unsafe, fork mode runs jobs in
   * process mode and says so in each job's output. `"process"`: one fresh
   * Blender per job (a Blender start-up per job; nothing is shared with a
   * warm Blender). `"pool"`: up to `maxWorkers` warm Blenders that run many
   * jobs each, resetting Blender's data between jobs (an empty scene, or the
   * job's .blend file) and running each script in fresh globals: the fastest,
   * for trusted scripts only (a job runs in the worker's own process). No
   * mode needs `--allow-net`.
   *
   * @default {"fork"}
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
   * GPUs for the slots: slot `i` (of `maxWorkers`) renders on `gpus[i % gpus.length]`. Its jobs get the device in
   * `CUDA_VISIBLE_DEVICES`, `HIP_VISIBLE_DEVICES` and `ONEAPI_DEVICE_SELECTOR` (set before Cycles first uses a GPU
   * in that Blender), and Cycles' preferences use the GPU devices it then sees. Device ids are as the drivers number
   * them (`"0"`, `"1"`; a UUID works for CUDA). `bgproc info` lists the devices Cycles sees.
   *
   * @default {[]} (no assignment: every job sees every device)
   *
   * @example Two GPUs, one per slot
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager({ maxWorkers: 2, gpus: ["0", "1"] });
   * ```
   */
  gpus?: readonly string[];
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
   * Files the script needs beside it (textures, a .blend to append from, modules): each is copied into the job's
   * folder under its own name before the script runs, and over NATS it travels to the worker with the job. The
   * script finds them in `job_folder` (a global, and `bgproc.job_folder`). An input the job leaves as it was is not
   * an output; one it changes or replaces is. At most 1000; their names must differ.
   *
   * @default {[]}
   *
   * @example Give a job a texture
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager();
   * manager.addJob({ script: "./apply_texture.py", inputs: ["./textures/brick.png"] });
   * // in apply_texture.py: os.path.join(job_folder, "brick.png")
   * ```
   */
  inputs?: readonly string[];
  /**
   * Over NATS, what a file the job's .blend uses but the host cannot find does: `"warn"` runs the job with one warning
   * per file in its output (the render may lack a texture), `"fail"` drops the job before it is queued. Locally the
   * job reads its files where they are, and this changes nothing. See {@linkcode JobManager.dependencies}.
   *
   * @default {"warn"}
   */
  missingFiles?: "warn" | "fail";
  /**
   * Among queued jobs, higher first; first in, first out within a priority (retries that are due go first). Change
   * it while the job is queued with {@linkcode JobManager.setPriority}. Over NATS each worker takes the
   * highest-priority job it can run whenever a slot frees (jobs that arrive while it idles are taken as they come).
   *
   * @default {0}
   */
  priority?: number;
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

/** Options of {@linkcode JobManager.dependencies}. */
export interface DependenciesOptions {
  /** A script whose imports from its own folder count too (the job's script). */
  script?: string;
  /** Kills the job that looks when aborted. */
  signal?: AbortSignal;
  /** That job's timeout in milliseconds; 0 means none. @default {the manager's `timeout`} */
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
 * How a host or a worker proves who it is to a NATS server, and checks the server: the server's own configuration says
 * which it asks for. Files are read when connecting; none of these goes on a command line in the clear.
 *
 * @example A host with a credentials file, over TLS
 * ```ts ignore
 * import { JobManager } from "@bgproc/blender";
 *
 * await using manager = new JobManager({
 *   nats: { servers: "tls://nats.studio:4222", creds: "/etc/bgproc/host.creds", tls: { ca: "/etc/bgproc/ca.pem" } },
 * });
 * ```
 */
export interface NatsCredentials {
  /** A user, with `pass`. */
  user?: string;
  /** The password of `user`. */
  pass?: string;
  /** A token. */
  token?: string;
  /** A credentials file (`.creds`: a user JWT and its NKey seed, as `nsc` makes them). */
  creds?: string;
  /** A file holding a user NKey seed (`SU…`). */
  nkeySeed?: string;
  /** TLS: `{}` only requires it; `ca` checks the server's certificate, `cert` and `key` are this client's. */
  tls?: NatsTlsOptions;
}

/**
 * The TLS files of a NATS connection (PEM).
 *
 * @example
 * ```ts ignore
 * import type { NatsTlsOptions } from "@bgproc/blender";
 *
 * const tls: NatsTlsOptions = { ca: "ca.pem", cert: "worker.pem", key: "worker-key.pem" };
 * ```
 */
export interface NatsTlsOptions {
  /** The CA that signed the server's certificate. */
  ca?: string;
  /** This client's certificate, when the server verifies clients. */
  cert?: string;
  /** The key of `cert`. */
  key?: string;
}

/**
 * Signed jobs and results over NATS: key files as `bgproc keygen NAME` writes them (`NAME.key`, `NAME.pub`). A host
 * signs each job it submits with `key`, and with `trust` takes a completed job's result only when one of those
 * worker keys signed it. A worker signs each result with `key`, and with `trust` runs a job only when one of those
 * host keys signed it (an unsigned or badly signed job is dropped and dead-lettered with the reason, never run).
 *
 * @example
 * ```ts ignore
 * import { JobManager } from "@bgproc/blender";
 *
 * const manager = new JobManager({
 *   nats: { servers: "tls://farm:4222", signing: { key: "host.key", trust: ["worker-a.pub", "worker-b.pub"] } },
 * });
 * ```
 */
export interface NatsSigningOptions {
  /** This side's private key file (`.key`). */
  key?: string;
  /** The other side's public key files (`.pub`) to trust. */
  trust?: string[];
}

/** Where the NATS server is, as `JobManagerOptions.nats` takes it. */
export interface JobManagerNatsOptions extends NatsCredentials {
  /** Sign this host's jobs, and require signed results: see {@linkcode NatsSigningOptions}. */
  signing?: NatsSigningOptions;
  /** Server URL(s), e.g. `"nats://127.0.0.1:4222"` (`tls://…` for TLS). */
  servers: string | string[];
  /** Jobs, names, workers and files are separate per namespace. @default {"default"} */
  namespace?: string;
  /**
   * How long a job may go without its worker's heartbeat before it is redelivered, in ms (set on the queue
   * consumers this host makes).
   *
   * @default {30000}
   */
  ackWaitMs?: number;
}

/** Every option's default. */
export const DEFAULTS = {
  maxWorkers: 2,
  maxAttempts: 1,
  timeout: 0,
  keepFiles: false,
  outputLimit: 1 << 20,
  resultLimit: 64 * 1024 * 1024,
  mode: "fork",
  maxJobsPerWorker: 100,
  maxWorkerMemoryMiB: 2048,
  prewarm: false,
  factoryStartup: true,
  addons: [],
  progress: "auto",
  retry: { on: RETRYABLE_REASONS, delayMs: 250, factor: 2, maxDelayMs: 30_000 },
  restartIntensity: { maxFailures: 5, periodMs: 10_000 },
} as const;

/** The options, checked, with their defaults filled in. */
export interface ResolvedOptions {
  readonly maxWorkers: number;
  readonly maxAttempts: number;
  readonly timeout: number;
  readonly blender: string | undefined;
  readonly workDir: string | undefined;
  readonly keepFiles: boolean;
  readonly outputLimit: number;
  readonly resultLimit: number;
  readonly mode: "process" | "pool" | "fork";
  readonly maxJobsPerWorker: number;
  readonly maxWorkerMemoryMiB: number;
  readonly prewarm: boolean;
  readonly gpus: readonly string[];
  readonly factoryStartup: boolean;
  readonly addons: readonly string[];
  readonly progress: ProgressSource;
  readonly outputDir: string | null;
  readonly retry: RetryPolicy;
  readonly intensity: RestartIntensity;
}

const WHAT = "Cannot make JobManager";

/** Check every option; throws `TypeError`/`RangeError` naming the first bad one. */
export function resolveOptions(options: JobManagerOptions): ResolvedOptions {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${WHAT} as its options must be an object: current value is ${String(options)}`);
  }
  const mode = options.mode ?? DEFAULTS.mode;
  if (mode !== "process" && mode !== "pool" && mode !== "fork") {
    throw new RangeError(`${WHAT} as 'mode' must be "process", "pool" or "fork": current value is ${String(mode)}`);
  }
  const retry = options.retry ?? {};
  const intensity = options.restartIntensity ?? {};
  return {
    maxWorkers: checkInteger(WHAT, "maxWorkers", options.maxWorkers ?? DEFAULTS.maxWorkers, 1),
    maxAttempts: checkInteger(WHAT, "maxAttempts", options.maxAttempts ?? DEFAULTS.maxAttempts, 1),
    timeout: checkDelay("timeout", options.timeout ?? DEFAULTS.timeout),
    blender: checkOptionalString("blender", options.blender),
    workDir: checkOptionalString("workDir", options.workDir),
    keepFiles: checkBoolean("keepFiles", options.keepFiles ?? DEFAULTS.keepFiles),
    outputLimit: checkInteger(WHAT, "outputLimit", options.outputLimit ?? DEFAULTS.outputLimit, 1),
    resultLimit: checkInteger(WHAT, "resultLimit", options.resultLimit ?? DEFAULTS.resultLimit, 1),
    mode,
    maxJobsPerWorker: checkInteger(WHAT, "maxJobsPerWorker", options.maxJobsPerWorker ?? DEFAULTS.maxJobsPerWorker, 1),
    maxWorkerMemoryMiB: checkNumber(
      WHAT,
      "maxWorkerMemoryMiB",
      options.maxWorkerMemoryMiB ?? DEFAULTS.maxWorkerMemoryMiB,
      1,
    ),
    prewarm: checkBoolean("prewarm", options.prewarm ?? DEFAULTS.prewarm),
    gpus: checkGpus(options.gpus ?? []),
    factoryStartup: checkBoolean("factoryStartup", options.factoryStartup ?? DEFAULTS.factoryStartup),
    addons: checkManagerAddons(options.addons ?? DEFAULTS.addons),
    progress: checkProgressSource(WHAT, options.progress ?? DEFAULTS.progress, RangeError),
    outputDir: options.outputDir === undefined ? null : checkOutputDir(WHAT, options.outputDir, TypeError),
    retry: {
      on: checkRetryReasons(retry.on ?? DEFAULTS.retry.on),
      initialDelayMs: checkNumber(WHAT, "retry.delayMs", retry.delayMs ?? DEFAULTS.retry.delayMs, 0),
      factor: checkNumber(WHAT, "retry.factor", retry.factor ?? DEFAULTS.retry.factor, 1),
      maxDelayMs: Math.min(
        MAX_DELAY_MS,
        checkNumber(WHAT, "retry.maxDelayMs", retry.maxDelayMs ?? DEFAULTS.retry.maxDelayMs, 0),
      ),
    },
    intensity: {
      maxFailures: checkInteger(
        WHAT,
        "restartIntensity.maxFailures",
        intensity.maxFailures ?? DEFAULTS.restartIntensity.maxFailures,
        0,
      ),
      periodMs: Math.min(
        MAX_DELAY_MS,
        checkNumber(WHAT, "restartIntensity.periodMs", intensity.periodMs ?? DEFAULTS.restartIntensity.periodMs, 0),
      ),
    },
  };
}

function checkDelay(field: string, value: number): number {
  if (typeof value !== "number" || !(value >= 0 && value <= MAX_DELAY_MS)) {
    throw new RangeError(`${WHAT} as '${field}' must be from 0 to ${MAX_DELAY_MS} ms: current value is ${value}`);
  }
  return value;
}

function checkOptionalString(field: string, value: unknown): string | undefined {
  if (value === undefined || (typeof value === "string" && value !== "")) return value;
  throw new TypeError(`${WHAT} as '${field}' must be a non-empty string: current value is ${String(value)}`);
}

function checkManagerAddons(value: unknown): string[] {
  const names: string[] = [];
  const problem = addonsProblem(value, names);
  if (problem !== undefined) throw new TypeError(`${WHAT} as 'addons' ${problem}`);
  return names;
}

function checkBoolean(field: string, value: unknown): boolean {
  if (typeof value === "boolean") return value;
  throw new TypeError(`${WHAT} as '${field}' must be a boolean: current value is ${String(value)}`);
}

/**
 * Throw `Deno.errors.NotCapable` with one line naming the missing flag,
 * unless the permissions the manager needs are granted.
 */
export function checkPermissions(blender: string, workDir: string): void {
  const needed: [Deno.PermissionDescriptor, string, string][] = [
    [{ name: "read", path: workDir }, "--allow-read", `to read its work root in ${workDir}`],
    [{ name: "write", path: workDir }, "--allow-write", `to write its work root in ${workDir}`],
    [{ name: "run", command: blender }, "--allow-run", `to start Blender (${blender})`],
  ];
  for (const [descriptor, flag, why] of needed) {
    if (Deno.permissions.querySync(descriptor).state !== "granted") {
      throw new Deno.errors.NotCapable(`bgproc's JobManager needs ${flag} ${why}; run Deno with ${flag}`);
    }
  }
}

/** `gpus`: at most 64 device ids, each of letters, digits, `-`, `_`, `:` or `.`. */
function checkGpus(value: unknown): string[] {
  if (!Array.isArray(value) || value.length > 64) {
    throw new TypeError(
      `${WHAT} as 'gpus' must be an array of at most 64 device ids: current value is ${String(value)}`,
    );
  }
  return value.map((id) => {
    if (typeof id !== "string" || !/^[\w.:-]{1,64}$/.test(id)) {
      throw new TypeError(`${WHAT} as 'gpus' holds ${JSON.stringify(id)}, which is not a device id ("0", "1", ...)`);
    }
    return id;
  });
}
