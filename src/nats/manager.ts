/**
 * The host side: {@linkcode NatsJobManager}, the local `JobManager`'s API
 * over a NATS JetStream namespace. Jobs go to the work queue, their records
 * live in KV (so a restarted or second host finds them by name), files go
 * through the object store by SHA-256, and progress, log lines and cancels
 * travel on per-job subjects.
 */

import type { JobOutput } from "../job/outputs.ts";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import type { KvWatchEntry } from "@nats-io/kv";
import type { QueuedIterator, Subscription } from "@nats-io/transport-node";
import {
  checkAddons,
  checkArgs,
  checkBlendFile,
  checkFactoryStartup,
  checkFile,
  checkFileTarget,
  checkJobName,
  checkNumber,
  checkOutputDir,
  checkPassedData,
  checkPassedDataBlocks,
  checkProgressSource,
  checkRetryReasons,
  checkTimeout,
  MAX_DELAY_MS,
} from "../_validate.ts";
import { type DropReason, InvalidJobError, type JobDroppedDetails } from "../errors.ts";
import {
  type AddJobOptions,
  type AppendDataBlocksOptions,
  type AppendDataBlocksResult,
  type GetJobNamesOptions,
  type Job,
  JobManager,
  type RetryOptions,
} from "../job_manager.ts";
import {
  DATA_BLOCK_COLLECTIONS,
  type DataBlocks,
  type DataBlockSelection,
  type JobCounts,
  type JobResult,
  type JobState,
  type JsonObject,
  type LogLine,
  type ManagerEvent,
  type ManagerHealth,
} from "../types.ts";
import { ManagerEvents } from "../_manager_events.ts";
import { type Cluster, ensureConsumer, type NatsOptions, openCluster, WORKER_TTL_MS } from "./_connection.ts";
import { type DeadLetter, listDeadLetters, listenMaxDeliveries } from "./_dead_letter.ts";
import { collectFiles, FileCache, type FileStats, referencedFiles, Uploader } from "./_files.ts";
import { NatsJob } from "./_job.ts";
import {
  checkNamespace,
  checkTags,
  decode,
  encode,
  type FileRef,
  type JobRecord,
  type JobSpec,
  nameOfToken,
  type ProgressMessage,
  type QueueMessage,
  RECORD_INLINE_LIMIT,
  RECORD_VERSION,
  type RecordedOutput,
  type RunOptions,
  subjectToken,
  type WorkerInfo,
} from "./_protocol.ts";
import { ended, isWrongRevision, mutateRecord, readRecord } from "./_records.ts";

export type { DeadLetter, FileStats, WorkerInfo };

/** Options of {@linkcode NatsJobManager.connect}. */
export interface NatsJobManagerOptions {
  /** Where the NATS server is, and the namespace. */
  nats: NatsOptions;
  /**
   * How many attempts a job gets (JetStream deliveries: a failed attempt, or
   * a worker that stopped heartbeating, starts the next one) before it is
   * dropped and dead-lettered. Also the MaxDeliver of queue consumers this
   * host makes.
   *
   * @default {3}
   */
  maxAttempts?: number;
  /**
   * The default per-attempt timeout of jobs, in milliseconds; 0 means none.
   *
   * @default {0}
   */
  timeout?: number;
  /** Which failures are retried, and how long the queue waits before redelivering. */
  retry?: RetryOptions;
  /**
   * How long a job may go without its worker's heartbeat before it is
   * redelivered, in ms (set on queue consumers this host makes).
   *
   * @default {30000}
   */
  ackWaitMs?: number;
  /**
   * The folder for this host's work root (downloaded result libraries).
   *
   * @default {the system's temporary folder}
   */
  workDir?: string;
}

/**
 * Options of {@linkcode NatsJobManager.addJob}: the local ones (`logFile`
 * gets the lines this host receives while it is connected), and the tags a
 * worker must have.
 */
export interface NatsAddJobOptions extends AddJobOptions {
  /**
   * Tags the worker must have (each of them).
   *
   * @default {[]}
   */
  requires?: string[];
  /**
   * This job's attempts.
   *
   * @default {the manager's `maxAttempts`}
   */
  maxAttempts?: number;
}

/** Options of {@linkcode NatsJobManager.close}. */
export interface NatsCloseOptions {
  /**
   * Kill this host's unfinished jobs in the cluster too; by default they go
   * on, and any host finds them later by name.
   *
   * @default {false}
   */
  killJobs?: boolean;
}

/**
 * The {@linkcode JobManager} API over NATS JetStream: jobs run on bgproc
 * workers (see {@linkcode runWorker}) on any machine, and jobs, results and
 * reports outlive this host.
 *
 * @example Submit a job to the cluster and read its result
 * ```ts ignore
 * import { NatsJobManager } from "@bgproc/blender/nats";
 *
 * await using manager = await NatsJobManager.connect({ nats: { servers: "nats://127.0.0.1:4222" } });
 * const job = manager.addJob({ name: "shot-010", script: "./render.py", passedData: { frame: 10 } });
 * for await (const progress of job.progressUpdates()) console.log(progress);
 * console.log((await job.result()).pythonData);
 * ```
 */
export class NatsJobManager implements AsyncDisposable {
  /** How many attempts a job gets by default. */
  readonly maxAttempts: number;
  /** The namespace. */
  readonly namespace: string;
  /** This host's work root. */
  readonly workRoot: string;
  readonly #cluster: Cluster;
  readonly #timeout: number;
  readonly #retry: JobSpec["retry"];
  readonly #ackWaitMs: number;
  readonly #jobs = new Map<string, NatsJob>();
  /** Live workers, with when this host last heard of each (its own clock: machines' clocks may differ). */
  readonly #workers = new Map<string, { info: WorkerInfo; seenAt: number }>();
  readonly #uploader: Uploader;
  readonly #downloads: FileCache;
  /** The `outputDir` this host gave each job it added: where the job's outputs are fetched to. */
  readonly #outputDirs = new Map<string, string>();
  readonly #consumers = new Map<string, Promise<string>>();
  readonly #subscriptions: Subscription[] = [];
  readonly #watches: QueuedIterator<KvWatchEntry>[] = [];
  #logSubscription: Subscription | undefined;
  #local: JobManager | undefined;
  #closing: Promise<void> | undefined;
  readonly #events = new ManagerEvents();

  private constructor(
    cluster: Cluster,
    settings: {
      namespace: string;
      maxAttempts: number;
      timeout: number;
      retry: JobSpec["retry"];
      ackWaitMs: number;
      workRoot: string;
    },
  ) {
    this.#cluster = cluster;
    this.namespace = settings.namespace;
    this.maxAttempts = settings.maxAttempts;
    this.#timeout = settings.timeout;
    this.#retry = settings.retry;
    this.#ackWaitMs = settings.ackWaitMs;
    this.workRoot = settings.workRoot;
    this.#uploader = new Uploader(cluster.files);
    this.#downloads = new FileCache(cluster.files, join(settings.workRoot, "files"));
  }

  /**
   * Connect to the namespace and load every job record in it.
   *
   * @param options The server and namespace, and defaults for jobs.
   * @returns The manager, with every job of the namespace known.
   * @throws {NatsConnectionError} When the server cannot be reached (the error has its URL).
   * @throws {RangeError} When an option is out of range.
   */
  static async connect(options: NatsJobManagerOptions): Promise<NatsJobManager> {
    const what = "Cannot make NatsJobManager";
    if (typeof options !== "object" || options === null || typeof options.nats !== "object") {
      throw new TypeError(`${what} as 'nats' must be an object with 'servers'`);
    }
    const namespace = checkNamespace(what, options.nats.namespace ?? "default");
    const maxAttempts = checkNumber(what, "maxAttempts", options.maxAttempts ?? 3, 1);
    if (!Number.isInteger(maxAttempts)) throw new RangeError(`${what} as 'maxAttempts' must be an integer`);
    const timeout = options.timeout ?? 0;
    if (!(timeout >= 0 && timeout <= MAX_DELAY_MS)) {
      throw new RangeError(`${what} as 'timeout' must be from 0 to ${MAX_DELAY_MS} ms: current value is ${timeout}`);
    }
    const retry = {
      on: [...checkRetryReasons(options.retry?.on ?? ["error", "crashed", "timed-out", "start-failed"])],
      delayMs: checkNumber(what, "retry.delayMs", options.retry?.delayMs ?? 250, 0),
      factor: checkNumber(what, "retry.factor", options.retry?.factor ?? 2, 1),
      maxDelayMs: checkNumber(what, "retry.maxDelayMs", options.retry?.maxDelayMs ?? 30_000, 0),
    };
    const ackWaitMs = checkNumber(what, "ackWaitMs", options.ackWaitMs ?? 30_000, 1);
    const workRoot = await Deno.makeTempDir({ dir: options.workDir ?? tmpdir(), prefix: "bgproc-host-" });
    let cluster: Cluster;
    try {
      cluster = await openCluster({ name: "bgproc-host", ...options.nats }, namespace);
    } catch (error) {
      await Deno.remove(workRoot, { recursive: true }).catch(() => {});
      throw error;
    }
    const manager = new NatsJobManager(cluster, { namespace, maxAttempts, timeout, retry, ackWaitMs, workRoot });
    try {
      await manager.#start();
    } catch (error) {
      await manager.close();
      throw error;
    }
    return manager;
  }

  async #start(): Promise<void> {
    const { jobs, workers, nc, names } = this.#cluster;
    // Every record now, then every change (the watch repeats the last values: applying one twice is harmless).
    for await (const key of await jobs.keys()) {
      const name = nameOfToken(key);
      const current = name === undefined ? null : await readRecord(jobs, name);
      if (current !== null) this.#apply(current.record);
    }
    for await (const name of await workers.keys()) {
      const entry = await workers.get(name);
      if (entry === null || entry.operation !== "PUT") continue;
      // An entry the server has not expired is at most WORKER_TTL_MS old.
      this.#workers.set(name, { info: decode<WorkerInfo>(entry.value), seenAt: Date.now() });
    }
    const jobWatch = await jobs.watch();
    const workerWatch = await workers.watch();
    this.#watches.push(jobWatch, workerWatch);
    void (async () => {
      for await (const entry of jobWatch) {
        if (entry.operation !== "PUT") {
          const name = nameOfToken(entry.key);
          const job = name === undefined ? undefined : this.#jobs.get(name);
          if (job !== undefined && job.ended) this.#jobs.delete(job.name);
          continue;
        }
        const record = decode<JobRecord>(entry.value);
        if (record.v === RECORD_VERSION) this.#apply(record);
      }
    })().catch(() => {});
    void (async () => {
      for await (const entry of workerWatch) {
        if (entry.operation === "PUT") {
          this.#workers.set(entry.key, { info: decode<WorkerInfo>(entry.value), seenAt: Date.now() });
        } else this.#workers.delete(entry.key);
      }
    })().catch(() => {});
    this.#subscriptions.push(nc.subscribe(names.allJobsSubject("progress"), {
      callback: (error, msg) => {
        if (error !== null) return;
        const name = nameOfToken(msg.subject.split(".")[3] ?? "");
        const job = name === undefined ? undefined : this.#jobs.get(name);
        const progress = decode<ProgressMessage>(msg.data);
        if (job !== undefined && !job.ended && progress.attempt >= job.attempts) {
          const before = job.progress;
          job.onProgress(progress.value);
          if (job.progress !== before) {
            this.#events.publish({ type: "progress", name: job.name, progress: job.progress });
          }
        }
      },
    }));
    this.#subscriptions.push(listenMaxDeliveries(this.#cluster, () => {}));
  }

  #apply(record: JobRecord): void {
    let job = this.#jobs.get(record.name);
    if (job === undefined || (job.id !== record.id && job.ended)) {
      job = this.#makeHandle(record.name, record.id);
      this.#jobs.set(record.name, job);
    }
    const before = { state: job.state, attempts: job.attempts, progress: job.progress };
    job.update(record);
    this.#publishChanges(job, before, record);
  }

  /** The events a record's new version makes: a state (or attempt) change, and progress. */
  #publishChanges(job: NatsJob, before: { state: JobState; attempts: number; progress: number }, record: JobRecord) {
    const { name, state, attempts: attempt } = job;
    if (state !== before.state || attempt !== before.attempts) {
      const reason = state === "DROPPED" ? record.report?.reason : undefined;
      this.#events.publish({ type: "state", name, state, attempt, ...(reason === undefined ? {} : { reason }) });
    }
    if (job.progress !== before.progress && state !== "COMPLETED") {
      this.#events.publish({ type: "progress", name, progress: job.progress });
    }
  }

  /**
   * Every job's state changes, progress and output lines in the namespace,
   * from now on, as `JobManager.events()` gives them (`health` is not sent:
   * see {@linkcode NatsJobManager.health}). Ends when `signal` aborts or the
   * manager closes.
   *
   * @param options `signal` to stop following.
   * @returns An async iterator of events.
   *
   * @example Follow the cluster's state changes
   * ```ts ignore
   * import { NatsJobManager } from "@bgproc/blender/nats";
   *
   * await using manager = await NatsJobManager.connect({ nats: { servers: "nats://127.0.0.1:4222" } });
   * for await (const event of manager.events()) if (event.type === "state") console.log(event.name, event.state);
   * ```
   */
  events(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<ManagerEvent> {
    this.#followLogs();
    return this.#events.subscribe(options.signal);
  }

  /**
   * `"ok"` while connected: workers come and go on their own (see
   * {@linkcode NatsJobManager.workers}), and a lost connection is retried
   * without end.
   */
  get health(): ManagerHealth {
    return { status: "ok" };
  }

  #makeHandle(name: string, id: string): NatsJob {
    const handle: NatsJob = new NatsJob(
      name,
      id,
      () => this.#jobs.get(name) === handle ? this.killJob(name) : Promise.resolve(),
      (record) => this.#materialize(record),
      () => this.#followLogs(),
    );
    return handle;
  }

  /**
   * Queue a job in the cluster. The options are checked here, and a bad one
   * throws before anything is sent; the files are uploaded (once per
   * content) and the job queued in the background.
   *
   * @param options The script, its data, how to run it, and the tags a worker needs.
   * @returns The job, whose `result()` settles when it ends on some worker.
   * @throws {InvalidJobError} When an option is wrong, or a queued or active job has the name.
   * @throws {Error} When the manager is closed.
   */
  addJob<T extends JsonObject = JsonObject>(options: NatsAddJobOptions): Job<T> {
    if (this.#closing !== undefined) throw new Error("Cannot add job as the NatsJobManager is closed");
    if (typeof options !== "object" || options === null) {
      throw new InvalidJobError("options", "Cannot add job as its options must be an object");
    }
    options.signal?.throwIfAborted();
    const name = options.name === undefined ? `job-${crypto.randomUUID().slice(0, 8)}` : checkJobName(options.name);
    const previous = this.#jobs.get(name);
    if (previous !== undefined && !previous.ended) {
      throw new InvalidJobError("name", `Cannot add job as a job named '${name}' is ${previous.state}`);
    }
    const script = checkFile("script", options.script);
    const blendFile = options.blendFile === undefined ? null : checkBlendFile(options.blendFile);
    const timeoutMs = options.timeout === undefined ? this.#timeout : checkTimeout(options.timeout);
    const args = options.args === undefined ? [] : checkArgs(options.args);
    const passedDataJson = checkPassedData(options.passedData);
    const passedDataBlocks = options.passedDataBlocks === undefined
      ? null
      : checkPassedDataBlocks(options.passedDataBlocks);
    const logFile = options.logFile === undefined ? null : checkFileTarget(options.logFile);
    const requires = checkTags("Cannot add job", "requires", options.requires ?? []);
    const outputDir = options.outputDir === undefined ? null : checkOutputDir("Cannot add job", options.outputDir);
    if (outputDir === null) this.#outputDirs.delete(name);
    else this.#outputDirs.set(name, outputDir);
    const runOptions: RunOptions = {
      ...(options.factoryStartup === undefined ? {} : { factoryStartup: checkFactoryStartup(options.factoryStartup) }),
      ...(options.addons === undefined ? {} : { addons: checkAddons(options.addons) }),
      ...(options.progress === undefined ? {} : { progress: checkProgressSource("Cannot add job", options.progress) }),
    };
    const maxAttempts = options.maxAttempts ?? this.maxAttempts;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new InvalidJobError("maxAttempts", `Cannot add job as 'maxAttempts' must be an integer >= 1`);
    }

    const id = crypto.randomUUID();
    const handle = this.#makeHandle(name, id);
    this.#jobs.set(name, handle);
    handle.submitted = (async () => {
      let passedData = JSON.parse(passedDataJson) as JsonObject;
      let passedDataFile: FileRef | undefined;
      if (passedDataJson.length > RECORD_INLINE_LIMIT / 4 && encode(passedData).length > RECORD_INLINE_LIMIT) {
        // Too large for a KV value (the server's max payload): it goes through the object store.
        const file = join(this.workRoot, `passed-${id}.json`);
        await Deno.writeTextFile(file, passedDataJson);
        try {
          passedDataFile = await this.#uploader.put(file, "passed_data.json");
        } finally {
          await Deno.remove(file).catch(() => {});
        }
        passedData = {};
      }
      const spec: JobSpec = {
        script: await this.#uploader.put(script),
        blendFile: blendFile === null ? null : await this.#uploader.put(blendFile),
        passedData,
        ...(passedDataFile === undefined ? {} : { passedDataFile }),
        args,
        timeoutMs,
        passedDataBlocks: passedDataBlocks === null ? null : {
          file: await this.#uploader.put(passedDataBlocks.path),
          blocks: Object.fromEntries(Object.entries(passedDataBlocks.blocks).map(([k, v]) => [k, [...v]])),
        },
        requires,
        retry: this.#retry,
        runOptions,
      };
      const now = new Date().toISOString();
      const record: JobRecord = {
        v: RECORD_VERSION,
        name,
        id,
        state: "QUEUED",
        worker: null,
        attempts: 0,
        maxAttempts,
        progress: 0,
        spec,
        queueSeq: 0,
        submittedAt: now,
        updatedAt: now,
        result: null,
        report: null,
        deadLetter: false,
      };
      const { jobs, js, names } = this.#cluster;
      const existing = await readRecord(jobs, name);
      const taken = () =>
        new InvalidJobError("name", `Cannot add job as a job named '${name}' is queued or active in the cluster`);
      if (existing !== null && !ended(existing.record)) throw taken();
      try {
        if (existing === null) await jobs.create(subjectToken(name), encode(record));
        else await jobs.update(subjectToken(name), encode(record), existing.revision);
      } catch (error) {
        // Another host took the name in between; any other failure is what it is.
        if (isWrongRevision(error)) throw taken();
        throw error;
      }
      handle.update(record);
      await this.#consumer(requires);
      const ack = await js.publish(names.queueSubject(requires), encode({ name, id } satisfies QueueMessage), {
        msgID: id,
      });
      await mutateRecord(jobs, name, (current) => current.id === id ? { ...current, queueSeq: ack.seq } : null);
    })();
    handle.submitted.catch((error) => {
      if (this.#jobs.get(name) === handle) this.#jobs.delete(name);
      handle.fail(error instanceof Error ? error : new Error(String(error)));
    });
    if (logFile !== null) void this.#writeLog(handle, logFile);
    if (options.signal !== undefined) {
      const signal = options.signal;
      const listener = () => void handle.kill().catch(() => {});
      signal.addEventListener("abort", listener, { once: true });
      void handle.whenEnded().then(() => signal.removeEventListener("abort", listener));
    }
    return handle as unknown as Job<T>;
  }

  /** Append the job's lines to `path`, with a header line per attempt, until it ends or the manager closes. */
  async #writeLog(job: NatsJob, path: string): Promise<void> {
    const lines = job.logs();
    const file = await Deno.open(path, { append: true, create: true }).catch(() => null);
    if (file === null) return;
    const encoder = new TextEncoder();
    try {
      let attempt = 0;
      for await (const line of lines) {
        let text = `${line.line}\n`;
        if (line.attempt !== attempt) {
          attempt = line.attempt;
          text = `--- ${job.name}: attempt ${attempt}${job.worker === null ? "" : ` on ${job.worker}`} ---\n${text}`;
        }
        await file.write(encoder.encode(text));
      }
    } finally {
      file.close();
    }
  }

  #consumer(requires: readonly string[]): Promise<string> {
    const key = requires.join(",");
    let pending = this.#consumers.get(key);
    if (pending === undefined) {
      pending = ensureConsumer(this.#cluster, requires, { ackWaitMs: this.#ackWaitMs, maxDeliver: this.maxAttempts });
      this.#consumers.set(key, pending);
      pending.catch(() => this.#consumers.delete(key));
    }
    return pending;
  }

  /**
   * Fetch a completed job's outputs from the object store into its `outputDir` on this host (given to this
   * host's `addJob`), or into this host's work root (`outputs/<name token>`, removed with the job), relative
   * paths kept.
   */
  async #keepOutputs(name: string, recorded: readonly RecordedOutput[]): Promise<JobOutput[]> {
    const folder = this.#outputDirs.get(name) ?? join(this.workRoot, "outputs", subjectToken(name));
    const outputs: JobOutput[] = [];
    for (const { file, path, bytes, kind } of recorded) {
      const target = join(folder, path);
      if (relative(folder, target).startsWith("..")) continue; // A record can say anything: stay in the folder.
      await Deno.mkdir(dirname(target), { recursive: true });
      await Deno.copyFile(await this.#downloads.get(file), target);
      outputs.push({ path: target, bytes, kind });
    }
    return outputs;
  }

  async #materialize(record: JobRecord): Promise<JobResult> {
    const result = record.result;
    if (result === null) throw new Error(`Job '${record.name}' completed without a result`);
    let dataBlocks: DataBlocks | null = null;
    if (result.dataBlocks !== null) {
      const path = await this.#downloads.get(result.dataBlocks.file);
      const collections = Object.fromEntries(
        DATA_BLOCK_COLLECTIONS.map((collection) => [collection, result.dataBlocks?.blocks[collection] ?? []]),
      );
      dataBlocks = { path, ...collections } as unknown as DataBlocks;
    }
    let inline = { pythonData: result.pythonData, stdout: result.stdout, stderr: result.stderr };
    if (result.overflow !== undefined) {
      inline = JSON.parse(await Deno.readTextFile(await this.#downloads.get(result.overflow))) as typeof inline;
    }
    const startedAt = new Date(result.startedAt);
    const endedAt = new Date(result.endedAt);
    return {
      name: record.name,
      pythonData: inline.pythonData,
      dataBlocks,
      outputs: await this.#keepOutputs(record.name, result.outputs ?? []),
      stdout: inline.stdout,
      stderr: inline.stderr,
      attempts: result.attempts,
      startedAt,
      endedAt,
      durationMs: result.durationMs,
      commandLine: result.commandLine,
    };
  }

  /**
   * The job named `name` in the namespace (from this host or any other), or `undefined`.
   *
   * @param name A job's name.
   * @returns The job: its state, progress, result or report, from the cluster.
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
   * @returns The latest progress seen (1 once it completed).
   * @throws {RangeError} When there is no job of that name.
   */
  getJobProgress(name: string): number {
    return this.#job(name).progress;
  }

  /**
   * The worker a job runs on (or ended on).
   *
   * @param name A job's name.
   * @returns The worker's id, or `null` while queued.
   * @throws {RangeError} When there is no job of that name.
   */
  getJobWorker(name: string): string | null {
    return this.#job(name).worker;
  }

  /**
   * The `python_data` of a completed job.
   *
   * @param name A job's name.
   * @returns The dict the script set as `python_data`.
   * @throws {RangeError} When there is no job of that name, or it has not completed.
   */
  async getRetrievedPythonData<T extends JsonObject = JsonObject>(name: string): Promise<T> {
    return (await this.#completed(name, "python_data").result()).pythonData as T;
  }

  /**
   * The data blocks a completed job returned, with a local copy of their library.
   *
   * @param name A job's name.
   * @returns The data blocks, or `null` when the script set none.
   * @throws {RangeError} When there is no job of that name, or it has not completed.
   */
  async getRetrievedDataBlocks(name: string): Promise<DataBlocks | null> {
    return (await this.#completed(name, "data_blocks").result()).dataBlocks;
  }

  /**
   * The report of a dropped job.
   *
   * @param name A job's name.
   * @returns The report, or `undefined` when the job was not dropped.
   * @throws {RangeError} When there is no job of that name.
   */
  getIssueString(name: string): string | undefined {
    return this.#job(name).report;
  }

  /**
   * Kill a job: a queued one is removed from the queue, a running one is
   * killed on its worker (with its process group). Either way it ends as
   * DROPPED with reason `"killed"`.
   *
   * @param name A job's name.
   * @returns Settles once the job's record says it ended.
   * @throws {RangeError} When there is no job of that name.
   */
  async killJob(name: string): Promise<void> {
    const job = this.#job(name);
    await job.submitted.catch(() => {});
    if (job.ended) return;
    const { jobs, jsm, nc, names } = this.#cluster;
    const report = (record: JobRecord, summary: string): JobDroppedDetails => ({
      jobName: name,
      reason: "killed" satisfies DropReason,
      summary,
      attempts: record.attempts,
      exitCode: null,
      signal: null,
      pythonError: null,
      stderrTail: record.report?.stderrTail ?? "",
      stdoutTail: record.report?.stdoutTail ?? "",
      commandLine: record.report?.commandLine ?? "",
    });
    const removed = await mutateRecord(jobs, name, (record) => {
      if (record.id !== job.id || record.state !== "QUEUED") return null;
      return { ...record, state: "DROPPED", report: report(record, "killed while queued") };
    });
    if (removed !== null) {
      job.update(removed);
      if (removed.queueSeq > 0) await jsm.streams.deleteMessage(names.jobsStream, removed.queueSeq).catch(() => {});
    } else {
      const current = await readRecord(jobs, name);
      if (current === null || current.record.id !== job.id || ended(current.record)) return await job.whenEnded();
      let heard = false;
      if (current.record.worker !== null) {
        heard = await nc.request(names.jobSubject(name, "cancel"), encode({}), { timeout: 2000 })
          .then(() => true, () => false);
      }
      if (!heard) {
        // No worker has it now (between attempts, or its worker died): end it here; a redelivery is then acked unrun.
        const written = await mutateRecord(jobs, name, (record) => {
          if (record.id !== job.id || ended(record)) return null;
          return { ...record, state: "DROPPED", report: report(record, "killed between attempts") };
        });
        if (written !== null) job.update(written);
      }
    }
    await job.whenEnded();
  }

  /**
   * Kill every unfinished job of the namespace.
   *
   * @returns Settles once each has ended.
   */
  async killAll(): Promise<void> {
    await Promise.all([...this.#jobs.values()].filter((job) => !job.ended).map((job) => this.killJob(job.name)));
  }

  /**
   * The names of the namespace's jobs, oldest submission first.
   *
   * @param options `state` to list only the jobs in that state.
   * @returns The names.
   */
  getJobNames(options: GetJobNamesOptions = {}): string[] {
    return [...this.#jobs.values()]
      .filter((job) => options.state === undefined || job.state === options.state)
      .sort((a, b) => (a.record?.submittedAt ?? "~").localeCompare(b.record?.submittedAt ?? "~"))
      .map((job) => job.name);
  }

  /** How many of the namespace's jobs are in each state, and how many worker slots are free. */
  get counts(): JobCounts {
    const counts = { queued: 0, active: 0, completed: 0, dropped: 0 };
    for (const job of this.#jobs.values()) {
      if (job.state === "QUEUED") counts.queued++;
      else if (job.state === "ACTIVE") counts.active++;
      else if (job.state === "COMPLETED") counts.completed++;
      else counts.dropped++;
    }
    let available = 0;
    for (const worker of this.#liveWorkers()) available += Math.max(0, worker.slots - worker.running.length);
    return { ...counts, availableWorkers: available };
  }

  /**
   * The live workers of the namespace: capabilities, running jobs, last heartbeat.
   *
   * @returns The workers whose heartbeat is recent.
   */
  workers(): Promise<WorkerInfo[]> {
    return Promise.resolve(this.#liveWorkers());
  }

  #liveWorkers(): WorkerInfo[] {
    const now = Date.now();
    return [...this.#workers.values()].filter((worker) => now - worker.seenAt < WORKER_TTL_MS).map((worker) =>
      worker.info
    );
  }

  /**
   * The jobs that exhausted their attempts, from the dead-letter stream.
   *
   * @returns Each dead-lettered job with its report, oldest first.
   */
  deadLetters(): Promise<DeadLetter[]> {
    return listDeadLetters(this.#cluster);
  }

  /** How many files this host uploaded, and how many the object store already had. */
  get files(): FileStats {
    return this.#uploader.stats;
  }

  /**
   * Append (or link) data blocks into a .blend file on this host and save
   * it, as the local `JobManager.appendDataBlocks` does: it writes a file
   * here, so it runs in a Blender on this host (made on first use, closed
   * with the manager), not on a worker.
   *
   * @param blocks The blocks: a job's `dataBlocks` (its library is a local copy), or `{ from, objects?, ... }`.
   * @param options The target file, and whether to overwrite same-named blocks or link.
   * @returns The names the blocks ended up with in the target.
   * @throws {BlenderNotFoundError} When this host has no Blender.
   * @throws {InvalidJobError} When the blocks or the target are not usable.
   * @throws {JobDroppedError} When the append job fails.
   */
  appendDataBlocks(
    blocks: DataBlocks | DataBlockSelection,
    options: AppendDataBlocksOptions,
  ): Promise<AppendDataBlocksResult> {
    if (this.#closing !== undefined) return Promise.reject(new Error("Cannot append as the NatsJobManager is closed"));
    this.#local ??= new JobManager({ maxWorkers: 1, workDir: this.workRoot });
    return this.#local.appendDataBlocks(blocks, options);
  }

  /**
   * Collect stale files: remove from the object store every file that no job
   * record of the namespace refers to (script, .blend, passed data, passed or
   * result library) and that was stored more than `olderThanMs` ago. Remove
   * ended jobs (`removeJob`) first to free their files. The age keeps files of
   * jobs being submitted right now; a host that reuses a file collected after
   * it looked uploads it again.
   *
   * @param options `olderThanMs`: the least age of a file to remove.
   * @returns The SHA-256 names of the files removed.
   */
  async collectFiles(options: { olderThanMs?: number } = {}): Promise<string[]> {
    const olderThanMs = checkNumber("Cannot collect files", "olderThanMs", options.olderThanMs ?? 3_600_000, 0);
    const referenced = new Set<string>();
    for await (const key of await this.#cluster.jobs.keys()) {
      const name = nameOfToken(key);
      const current = name === undefined ? null : await readRecord(this.#cluster.jobs, name);
      if (current === null) continue;
      for (const ref of referencedFiles(current.record)) referenced.add(ref.sha256);
    }
    return await collectFiles(this.#cluster.files, referenced, olderThanMs);
  }

  /**
   * Forget an ended job in the cluster (its record), so the name is free.
   *
   * @param name A job's name.
   * @returns Settles once the record is removed.
   * @throws {RangeError} When there is no job of that name.
   * @throws {Error} When the job has not ended.
   */
  async removeJob(name: string): Promise<void> {
    const job = this.#job(name);
    if (!job.ended) throw new Error(`Cannot remove job '${name}' as it is ${job.state}: kill it first`);
    this.#jobs.delete(name);
    await this.#cluster.jobs.delete(subjectToken(name));
    if (!this.#outputDirs.delete(name)) {
      await Deno.remove(join(this.workRoot, "outputs", subjectToken(name)), { recursive: true }).catch(() => {});
    }
  }

  /**
   * Stop following the cluster and remove this host's work root. Jobs go on
   * in the cluster unless `killJobs`. Calling it again returns the same promise.
   *
   * @param options `killJobs` to kill this namespace's unfinished jobs first.
   * @returns Settles once the connection is closed.
   */
  close(options: NatsCloseOptions = {}): Promise<void> {
    this.#closing ??= (async () => {
      if (options.killJobs === true) await this.killAll().catch(() => {});
      for (const watch of this.#watches) watch.stop();
      for (const subscription of this.#subscriptions) subscription.unsubscribe();
      this.#logSubscription?.unsubscribe();
      for (const job of this.#jobs.values()) job.close();
      this.#events.close();
      await this.#local?.close();
      await this.#downloads.close();
      await this.#cluster.nc.drain().catch(() => {});
      await Deno.remove(this.workRoot, { recursive: true }).catch(() => {});
    })();
    return this.#closing;
  }

  /** Same as {@linkcode NatsJobManager.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Start receiving log lines (on the first `logs()` reader). */
  #followLogs(): void {
    if (this.#logSubscription !== undefined || this.#closing !== undefined) return;
    this.#logSubscription = this.#cluster.nc.subscribe(this.#cluster.names.allJobsSubject("log"), {
      callback: (error, msg) => {
        if (error !== null) return;
        const name = nameOfToken(msg.subject.split(".")[3] ?? "");
        const job = name === undefined ? undefined : this.#jobs.get(name);
        if (job === undefined || job.ended) return;
        const line = decode<LogLine>(msg.data);
        job.onLog(line);
        this.#events.publish({ type: "log", name: job.name, ...line });
      },
    });
  }

  #completed(name: string, what: string): NatsJob {
    const job = this.#job(name);
    if (job.state !== "COMPLETED") {
      throw new RangeError(`Cannot get ${what} of job '${name}' as it is ${job.state}, not COMPLETED`);
    }
    return job;
  }

  #job(name: string): NatsJob {
    const job = this.#jobs.get(name);
    if (job === undefined) throw new RangeError(`No job named '${name}' in namespace '${this.namespace}'`);
    return job;
  }
}
