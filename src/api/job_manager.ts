/** The facade: the typed async API over the actors; the only thing users touch. */

import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { planAppend } from "./append.ts";
import { checkJob, checkPriority, type JobDefaults } from "./checked_job.ts";
import { ManagerEvents } from "./manager_events.ts";
import { JobSpans } from "./_job_spans.ts";
import { type Job, JobHandle } from "./job.ts";
import {
  type AddJobOptions,
  type AppendDataBlocksOptions,
  type AppendDataBlocksResult,
  checkPermissions,
  type DependenciesOptions,
  type GetJobNamesOptions,
  type JobManagerOptions,
  resolveOptions,
} from "./options.ts";
import {
  checkBlendFile,
  checkFile,
  checkFileTarget,
  checkInteger,
  checkJobName,
  checkPassedDataBlocks,
} from "../_validate.ts";
import { type Dependencies, readDependencies } from "../deps/dependencies.ts";
import { findDependencies } from "../deps/find.ts";
import { type Backend, type BackendEvent, BACKENDS } from "../backend.ts";
import { blenderVersion, findBlender } from "../blender.ts";
import { InvalidJobError } from "../errors.ts";
import { LocalBackend } from "../local/backend.ts";
import { NatsBackend } from "../nats/_backend.ts";
import { type Render, type RenderOptions, startRender } from "../render/render.ts";
import type {
  DataBlocks,
  DataBlockSelection,
  JobCounts,
  JobState,
  JsonObject,
  ManagerEvent,
  ManagerHealth,
} from "../types.ts";

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
  /** The `blender` option, for a Blender of this machine where jobs run elsewhere (dependencies over NATS). */
  readonly #localBlender: { blender?: string };
  #blenderVersion: Promise<string> | undefined;
  /** This manager's own work root. */
  readonly workRoot: string;
  readonly #backend: Backend;
  #maxWorkers: number;
  #maxAttempts: number;
  readonly #defaults: JobDefaults;
  readonly #jobs = new Map<string, JobHandle>();
  readonly #events = new ManagerEvents();
  readonly #spans: JobSpans;
  #closing: Promise<void> | undefined;
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
    this.#localBlender = resolved.blender === undefined ? {} : { blender: resolved.blender };
    const publish = (event: BackendEvent) => this.#onEvent(event);
    if (options.nats !== undefined) {
      // Over NATS a lost worker costs an attempt: 3 unless given.
      this.#maxAttempts = options.maxAttempts === undefined ? 3 : this.#maxAttempts;
      this.blenderPath = "";
      this.#backend = new NatsBackend(options.nats, { ...resolved, maxAttempts: this.#maxAttempts }, publish);
    } else {
      this.blenderPath = findBlender(resolved.blender === undefined ? {} : { blender: resolved.blender });
      checkPermissions(this.blenderPath, resolved.workDir ?? tmpdir());
      this.#backend = new LocalBackend(resolved, this.blenderPath, publish);
    }
    this.workRoot = this.#backend.workRoot;
    BACKENDS.set(this, this.#backend);
    // Over NATS the mode is each worker's, on its attempts' spans.
    const attributes = options.nats === undefined
      ? { "bgproc.backend": "local", "bgproc.mode": this.mode }
      : { "bgproc.backend": "nats" };
    this.#spans = new JobSpans(attributes, (name) => this.#jobs.get(name)?.state);
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
    const name = options.name === undefined ? this.#generateName("job") : checkJobName(options.name);
    const previous = this.#jobs.get(name);
    if (previous !== undefined && !previous.ended) {
      throw new InvalidJobError("name", `Cannot add job as a job named '${name}' is ${previous.state}`);
    }
    const checked = checkJob(name, options, this.#defaults);
    const job = { ...checked, trace: this.#spans.start(name, checked.script) };
    if (previous !== undefined) this.#remove(name); // As the add-on did: a new job replaces an ended one.
    const handle = this.#handle<T>(name);
    handle.priority = job.priority;
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
   * .blend file. With `nats` it runs on a worker: the library and the target
   * travel as the job's inputs and the changed target comes back and replaces
   * the file here (the host needs no Blender; `link` is refused there).
   *
   * @param blocks The blocks: a job's `dataBlocks`, or `{ from, objects?, materials?, ... }`.
   * @param options The target file, and whether to overwrite same-named blocks or link.
   * @returns The names the blocks ended up with in the target.
   * @throws {InvalidJobError} When the blocks or the target are not usable; nothing starts.
   * @throws {JobDroppedError} When the append job fails.
   */
  async appendDataBlocks(
    blocks: DataBlocks | DataBlockSelection,
    options: AppendDataBlocksOptions,
  ): Promise<AppendDataBlocksResult> {
    const selection = checkPassedDataBlocks(blocks, "blocks");
    const into = resolve(checkFileTarget(options.into, "into"));
    if (existsSync(into)) checkPassedDataBlocks({ from: into }, "into");
    if (selection === null) return { into, names: {} };
    if (this.#closing !== undefined) throw new Error("Cannot append as the JobManager is closed");
    const remote = this.#backend.sharesFiles ? null : { stagingRoot: this.workRoot };
    const plan = planAppend(selection, into, options, remote);
    try {
      const name = this.#generateName("append");
      const job = this.addJob({ name, script: join(this.#backend.jobScripts, "append_job.py"), ...plan.job });
      try {
        const result = await job.result();
        await plan.finish(result);
        return { into, names: result.pythonData.names as AppendDataBlocksResult["names"] };
      } finally {
        if (this.#jobs.get(name) === job) this.#remove(name);
      }
    } finally {
      await plan.cleanup();
    }
  }

  /**
   * Every file a .blend uses, found by Blender itself, without running anything of the file's: linked libraries (and
   * what they link), images (each UDIM tile, each file of a sequence), movie clips, sounds, fonts, volumes, cache
   * files, text blocks from files, point and fluid caches on disk; with `script`, the modules it imports from its own
   * folder. Packed files are not listed (they travel inside the .blend). One job on this manager's Blenders; over
   * NATS, on a Blender of this machine (`blender` option, `$BLENDER`, or `blender` on PATH).
   *
   * @param blendFile The .blend file.
   * @param options The script, and the job's timeout and signal.
   * @returns The files (absolute paths, as written, sizes), those missing, and their total size.
   * @throws {InvalidJobError} When `blendFile` or `script` is not a file (or not a .blend).
   * @throws {JobDroppedError} When Blender could not open the file.
   *
   * @example What a shot needs
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager();
   * const { files, missing } = await manager.dependencies("shot.blend", { script: "render_shot.py" });
   * console.log(files.map((file) => `${file.kind} ${file.path}`).join("\n"), missing.length, "missing");
   * ```
   */
  async dependencies(blendFile: string, options: DependenciesOptions = {}): Promise<Dependencies> {
    const blend = checkBlendFile(blendFile);
    const script = options.script === undefined ? null : checkFile("script", options.script);
    if (this.#closing !== undefined) throw new Error("Cannot list dependencies as the JobManager is closed");
    if (!this.#backend.sharesFiles) {
      const timeoutMs = options.timeout ?? this.#defaults.timeoutMs;
      const signal = options.signal === undefined ? {} : { signal: options.signal };
      return await findDependencies(blend, script, {
        timeoutMs,
        workDir: this.workRoot,
        ...signal,
        ...this.#localBlender,
      });
    }
    const name = this.#generateName("deps");
    const job = this.addJob({
      name,
      script: join(this.#backend.jobScripts, "deps_job.py"),
      passedData: { blend, script },
      progress: "script",
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    });
    try {
      return readDependencies((await job.result()).pythonData, script);
    } finally {
      if (this.#jobs.get(name) === job) this.#remove(name);
    }
  }

  /**
   * Render frames of a .blend file, as a render farm does: the frames are split into chunk jobs (`chunk`
   * frames each) that run in parallel on this manager's workers (local Blenders, or a cluster's workers), retried
   * by its `maxAttempts` policy; each chunk renders into its own job folder and its frames come back into
   * `outputDir` as its outputs. The render reports one progress and one result with every frame's file; with
   * `video`, Blender's sequencer then makes a video of the frames in one more job (over NATS the frames travel to
   * it as its inputs, and the video comes back).
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
      defaultName: this.#generateName("render"),
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
   * Change a queued job's priority: among queued jobs, higher first (first in, first out within a priority).
   *
   * @param name The job's name.
   * @param priority An integer (either sign).
   * @throws {RangeError} When no job has that name, or it is not QUEUED any more.
   * @throws {InvalidJobError} When `priority` is not an integer.
   *
   * @example Let an urgent job go first
   * ```ts ignore
   * import { JobManager } from "@bgproc/blender";
   *
   * await using manager = new JobManager({ maxWorkers: 1 });
   * for (let i = 0; i < 10; i++) manager.addJob({ name: `frame-${i}`, script: "./render.py" });
   * await manager.setPriority("frame-9", 10);
   * ```
   */
  async setPriority(name: string, priority: number): Promise<void> {
    const job = this.#job(name);
    const checked = checkPriority(priority, "Cannot set the priority");
    if (job.state !== "QUEUED") {
      throw new RangeError(`Cannot set the priority of job '${name}' as it is ${job.state}, not QUEUED`);
    }
    if (!await this.#backend.reprioritize(name, checked)) {
      throw new RangeError(`Cannot set the priority of job '${name}' as it has started`);
    }
    job.priority = checked;
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
    this.#remove(name);
  }

  /** `removeJob` for the manager's own use: a subclass's override is not what it calls. */
  #remove(name: string): void {
    const job = this.#job(name);
    if (job.state !== "COMPLETED" && job.state !== "DROPPED") {
      throw new Error(`Cannot remove job '${name}' as it is ${job.state}: kill it first`);
    }
    this.#jobs.delete(name);
    this.#backend.forget(name).catch(() => {}); // What it left is the backend's to clean up; nobody waits here.
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
        await this.#backend.close();
      } finally {
        // What a cluster still runs goes on there; here its followers end.
        for (const job of this.#jobs.values()) job.close();
        this.#spans.close();
        this.#events.close();
      }
    })();
    return this.#closing;
  }

  /** A job ended: its span and metrics. */
  #ended(job: JobHandle, event: BackendEvent): void {
    const error = event.type === "dropped" || event.type === "rejected" ? event.error : undefined;
    this.#spans.ended(job.name, {
      state: job.state,
      attempts: job.attempts,
      timings: job.timings,
      ...(error === undefined ? {} : { error }),
    });
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

  /**
   * A name no job of this manager has: `<prefix>-<n>`, or `<prefix>-<random>` where names are shared with other
   * managers (a cluster's namespace), so two hosts never pick the same one.
   */
  #generateName(prefix: string): string {
    let name: string;
    do {
      name = `${prefix}-${this.#backend.sharedNames ? crypto.randomUUID().slice(0, 8) : this.#nextName++}`;
    } while (this.#jobs.has(name));
    return name;
  }

  /** A handle whose kill reaches its own job only, not a later job that reused the name. */
  #handle<T extends JsonObject>(
    name: string,
    known?: { state: JobState; attempts: number; progress: number },
  ): JobHandle<T> {
    const kill = () => this.#jobs.get(name) === handle ? this.killJob(name) : Promise.resolve();
    const wantLogs = () => this.#backend.wantLogs();
    const handle: JobHandle<T> = known === undefined
      ? new JobHandle<T>(name, kill, wantLogs)
      : JobHandle.known<T>(name, kill, wantLogs, known);
    return handle;
  }

  #onEvent(event: BackendEvent): void {
    if (event.type === "health" || event.type === "unreadable") return this.#events.publish(event);
    const { name } = event;
    switch (event.type) {
      case "known": {
        const previous = this.#jobs.get(name);
        if (previous !== undefined && !previous.ended) return;
        this.#jobs.delete(name); // Re-inserted: the names stay in the order jobs were added.
        this.#jobs.set(name, this.#handle(name, event));
        // An ended job's own event follows: no QUEUED before its COMPLETED.
        if (event.state !== "QUEUED" && event.state !== "ACTIVE") return;
        return this.#events.publish({ type: "state", name, state: event.state, attempt: event.attempts });
      }
      case "forgotten": {
        const job = this.#jobs.get(name);
        if (job === undefined) return;
        this.#jobs.delete(name);
        // Another host's job whose record went before it was queued: whoever follows it is told.
        if (!job.ended) job.apply({ type: "rejected", name, error: new Error(`Job '${name}' was never queued`) });
        return;
      }
      default: {
        const job = this.#jobs.get(name);
        if (job === undefined) return;
        const wasEnded = job.ended;
        job.apply(event);
        if (!wasEnded) {
          const managerEvent = toManagerEvent(event, job);
          if (managerEvent !== undefined) this.#events.publish(managerEvent);
          if (job.ended) this.#ended(job, event);
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
