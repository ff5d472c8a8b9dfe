/**
 * The NATS backend of `JobManager`: `new JobManager({ nats })` makes one. It
 * imports the NATS manager (and so the npm NATS client) lazily, only here,
 * so `mod.ts` stays importable from a URL; until the connection is up,
 * `addJob` returns a handle that forwards to the cluster's job once queued.
 */

import { awaitAtCaller } from "../_at_caller.ts";
import { NatsBackendUnavailableError } from "../errors.ts";
import type {
  AddJobOptions,
  AppendDataBlocksOptions,
  AppendDataBlocksResult,
  GetJobNamesOptions,
  Job,
} from "../job_manager.ts";
import type {
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

/** Where the NATS server is, as `JobManagerOptions.nats` takes it. */
export interface JobManagerNatsOptions {
  /** Server URL(s), e.g. `"nats://127.0.0.1:4222"`. */
  servers: string | string[];
  /** Jobs, names, workers and files are separate per namespace. @default {"default"} */
  namespace?: string;
}

/** What of `NatsJobManager` the backend uses (structural, so no npm type is imported here). */
interface Remote {
  addJob<T extends JsonObject>(options: AddJobOptions & { maxAttempts?: number }): Job<T>;
  getJob(name: string): Job | undefined;
  getJobNames(options?: GetJobNamesOptions): string[];
  readonly counts: JobCounts;
  getJobState(name: string): JobState;
  getJobProgress(name: string): number;
  getIssueString(name: string): string | undefined;
  getRetrievedPythonData<T extends JsonObject>(name: string): Promise<T>;
  getRetrievedDataBlocks(name: string): Promise<DataBlocks | null>;
  appendDataBlocks(
    blocks: DataBlocks | DataBlockSelection,
    options: AppendDataBlocksOptions,
  ): Promise<AppendDataBlocksResult>;
  removeJob(name: string): Promise<void>;
  killJob(name: string): Promise<void>;
  events(options: { signal?: AbortSignal }): AsyncIterableIterator<ManagerEvent>;
  readonly health: ManagerHealth;
  killAll(): Promise<void>;
  close(): Promise<void>;
}

/** Settings the JobManager passes on. */
export interface NatsBackendSettings {
  maxAttempts: number;
  timeout: number;
  workDir: string | undefined;
}

/** A job added before the connection was up: forwards to the cluster's job once it is queued. */
class PendingJob<T extends JsonObject> implements Job<T> {
  readonly name: string;
  readonly #job: Promise<Job<T>>;
  #resolved: Job<T> | undefined;

  constructor(name: string, job: Promise<Job<T>>) {
    this.name = name;
    this.#job = job;
    job.then((resolved) => this.#resolved = resolved, () => {});
  }

  get state(): JobState {
    return this.#resolved?.state ?? "QUEUED";
  }

  get progress(): number {
    return this.#resolved?.progress ?? 0;
  }

  get attempts(): number {
    return this.#resolved?.attempts ?? 0;
  }

  async *progressUpdates(): AsyncIterableIterator<number> {
    yield* (await this.#job).progressUpdates();
  }

  result(): Promise<JobResult<T>> {
    return awaitAtCaller(this.#job.then((job) => job.result()));
  }

  async *logs(): AsyncIterableIterator<LogLine> {
    yield* (await this.#job).logs();
  }

  async kill(): Promise<void> {
    await (await this.#job.catch(() => null))?.kill();
  }
}

/** The NATS cluster behind a `JobManager`. */
export class NatsBackend {
  /** The attempts of jobs added from now on. */
  maxAttempts: number;
  readonly #ready: Promise<Remote>;
  #remote: Remote | undefined;
  readonly #pending = new Map<string, Job>();

  constructor(nats: JobManagerNatsOptions, settings: NatsBackendSettings) {
    if (
      typeof nats !== "object" || nats === null || (typeof nats.servers !== "string" && !Array.isArray(nats.servers))
    ) {
      throw new TypeError("Cannot make JobManager as 'nats' must be an object with 'servers'");
    }
    this.maxAttempts = settings.maxAttempts;
    this.#ready = (async () => {
      let module: typeof import("./manager.ts");
      try {
        // A specifier Deno cannot read ahead: a literal one is fetched (with the npm NATS client) at start-up,
        // by every user of the library, NATS or not.
        const specifier = new URL("./manager.ts", import.meta.url).href;
        module = await import(specifier);
      } catch (error) {
        throw new NatsBackendUnavailableError(error);
      }
      return await module.NatsJobManager.connect({
        nats: { ...(nats.namespace === undefined ? {} : { namespace: nats.namespace }), servers: nats.servers },
        maxAttempts: settings.maxAttempts,
        timeout: settings.timeout,
        ...(settings.workDir === undefined ? {} : { workDir: settings.workDir }),
      });
    })();
    this.#ready.then((remote) => this.#remote = remote, () => {});
  }

  /** Settles once connected, with every job of the namespace known. */
  async ready(): Promise<void> {
    await this.#ready;
  }

  addJob<T extends JsonObject>(options: AddJobOptions): Job<T> {
    const withAttempts = { maxAttempts: this.maxAttempts, ...options };
    if (this.#remote !== undefined) return this.#remote.addJob<T>(withAttempts);
    const name = options.name ?? `job-${crypto.randomUUID().slice(0, 8)}`;
    const job = this.#ready.then((remote) => remote.addJob<T>({ ...withAttempts, name }));
    const pending = new PendingJob<T>(name, job);
    this.#pending.set(name, pending as unknown as Job);
    job.finally(() => this.#pending.delete(name)).catch(() => {});
    return pending;
  }

  getJob(name: string): Job | undefined {
    return this.#remote?.getJob(name) ?? this.#pending.get(name);
  }

  getJobNames(options: GetJobNamesOptions = {}): string[] {
    return this.#remote?.getJobNames(options) ?? [...this.#pending.keys()];
  }

  get counts(): JobCounts {
    return this.#remote?.counts ??
      { queued: this.#pending.size, active: 0, completed: 0, dropped: 0, availableWorkers: 0 };
  }

  getJobState(name: string): JobState {
    return this.#remote?.getJobState(name) ?? this.#pendingJob(name).state;
  }

  getJobProgress(name: string): number {
    return this.#remote?.getJobProgress(name) ?? this.#pendingJob(name).progress;
  }

  getIssueString(name: string): string | undefined {
    if (this.#remote !== undefined) return this.#remote.getIssueString(name);
    this.#pendingJob(name);
    return undefined;
  }

  async getRetrievedPythonData<T extends JsonObject>(name: string): Promise<T> {
    return await (await this.#ready).getRetrievedPythonData<T>(name);
  }

  async getRetrievedDataBlocks(name: string): Promise<DataBlocks | null> {
    return await (await this.#ready).getRetrievedDataBlocks(name);
  }

  async appendDataBlocks(
    blocks: DataBlocks | DataBlockSelection,
    options: AppendDataBlocksOptions,
  ): Promise<AppendDataBlocksResult> {
    return await (await this.#ready).appendDataBlocks(blocks, options);
  }

  /** Forget an ended job: checked now, its record removed in the background. */
  removeJob(name: string): void {
    const state = this.getJobState(name);
    if (state !== "COMPLETED" && state !== "DROPPED") {
      throw new Error(`Cannot remove job '${name}' as it is ${state}: kill it first`);
    }
    this.#remote?.removeJob(name).catch(() => {});
  }

  #pendingJob(name: string): Job {
    const job = this.#pending.get(name);
    if (job === undefined) throw new RangeError(`No job named '${name}' in this JobManager`);
    return job;
  }

  /** The cluster's events from once connected (a failed connection ends them with its error). */
  async *events(options: { signal?: AbortSignal }): AsyncIterableIterator<ManagerEvent> {
    const remote = await this.#ready;
    if (options.signal?.aborted) return;
    yield* remote.events(options);
  }

  get health(): ManagerHealth {
    return this.#remote?.health ?? { status: "ok" };
  }

  async killJob(name: string): Promise<void> {
    await (await this.#ready).killJob(name);
  }

  async killAll(): Promise<void> {
    await (await this.#ready).killAll();
  }

  async close(): Promise<void> {
    const remote = await this.#ready.catch(() => null);
    await remote?.close();
  }
}
