/**
 * {@linkcode NatsJobManager}: the `JobManager` over a NATS JetStream namespace (its NATS backend, `host.ts`), with
 * what only a cluster has: its workers, its dead letters, its file store.
 */

import { checkNumber } from "../_validate.ts";
import { BACKENDS } from "../backend.ts";
import { JobManager } from "../api/job_manager.ts";
import type { AddJobOptions, RetryOptions } from "../api/options.ts";
import type { Job } from "../api/job.ts";
import type { JsonObject } from "../types.ts";
import type { NatsBackend } from "./_backend.ts";
import type { NatsOptions } from "./_connection.ts";
import { type DeadLetter, listDeadLetters, listUnreadable } from "./_dead_letter.ts";
import type { UnreadableMessage } from "./_unreadable.ts";
import { collectFiles, type FileStats, referencedFiles } from "./_files.ts";
import { type FileRef, nameOfToken, OUTPUTS_FILE_LIMIT, type WorkerInfo } from "./_protocol.ts";
import type { ObjectStore } from "@nats-io/obj";
import { readRecord } from "./_records.ts";
import type { NatsHost } from "./host.ts";

export type { DeadLetter, FileStats, UnreadableMessage, WorkerInfo };

/** Options of {@linkcode NatsJobManager.connect}. */
export interface NatsJobManagerOptions {
  /** Where the NATS server is, and the namespace. */
  nats: NatsOptions;
  /**
   * How many attempts a job gets (claims by workers, counted in its record: a
   * failed attempt, or a worker that stopped heartbeating, starts the next
   * one) before it is dropped and dead-lettered. The queue consumers this host
   * makes get `3 × maxAttempts + 2` deliveries, room for deliveries a worker
   * declines.
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
 * Options of {@linkcode NatsJobManager.addJob}: those of every `JobManager` (`logFile` gets the lines this host
 * receives while it is connected; `requires`, the tags a worker must have).
 *
 * @example
 * ```ts ignore
 * import type { NatsAddJobOptions } from "@bgproc/blender/nats";
 *
 * const options: NatsAddJobOptions = { script: "./bake.py", requires: ["gpu"] };
 * ```
 */
export type NatsAddJobOptions = AddJobOptions;

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
 * reports outlive this host. It is a `JobManager` with the `nats` option,
 * plus what only a cluster has.
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
export class NatsJobManager extends JobManager {
  /** The namespace. */
  readonly namespace: string;
  #closing: Promise<void> | undefined;

  private constructor(options: NatsJobManagerOptions) {
    if (typeof options !== "object" || options === null || typeof options.nats !== "object") {
      throw new TypeError("Cannot make NatsJobManager as 'nats' must be an object with 'servers'");
    }
    const { nats, ackWaitMs, ...rest } = options;
    super({ ...rest, nats: { ...nats, ...(ackWaitMs === undefined ? {} : { ackWaitMs }) } });
    this.namespace = nats.namespace ?? "default";
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
    const manager = new NatsJobManager(options);
    try {
      await manager.ready();
    } catch (error) {
      await manager.close();
      throw error;
    }
    return manager;
  }

  /**
   * The worker a job runs on (or ended on).
   *
   * @param name A job's name.
   * @returns The worker's id, or `null` while queued.
   * @throws {RangeError} When there is no job of that name.
   */
  getJobWorker(name: string): string | null {
    this.getJobState(name);
    return this.#host?.workerOf(name) ?? null;
  }

  /**
   * The live workers of the namespace: capabilities, running jobs, last heartbeat.
   *
   * @returns The workers whose heartbeat is recent.
   */
  async workers(): Promise<WorkerInfo[]> {
    return (await this.#connected()).liveWorkers();
  }

  /**
   * The jobs that exhausted their attempts, from the dead-letter stream.
   *
   * @returns Each dead-lettered job with its report, oldest first.
   */
  async deadLetters(): Promise<DeadLetter[]> {
    return await listDeadLetters((await this.#connected()).cluster);
  }

  /**
   * The messages and records of the namespace that no host or worker could read (not UTF-8, not JSON, or not the
   * protocol's shape), from the dead-letter stream: each was skipped where it arrived, and its reader said so once
   * (a manager event `unreadable`, a worker event). One host or worker dead-letters at most 60 a minute.
   *
   * @example
   * ```ts ignore
   * for (const message of await manager.unreadableMessages()) {
   *   console.log(message.subject, message.problem, message.seenBy);
   * }
   * ```
   *
   * @returns Each one with where it came from, why it was unreadable and its first characters, oldest first.
   */
  async unreadableMessages(): Promise<UnreadableMessage[]> {
    return await listUnreadable((await this.#connected()).cluster);
  }

  /** How many files this host uploaded, and how many the object store already had. */
  get files(): FileStats {
    return this.#host?.uploader.stats ?? { uploaded: 0, reused: 0, uploadedBytes: 0 };
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
    const { cluster } = await this.#connected();
    const referenced = new Set<string>();
    for await (const key of await cluster.jobs.keys()) {
      const name = nameOfToken(key);
      const current = name === undefined ? null : await readRecord(cluster.jobs, name);
      if (current === null) continue;
      for (const ref of referencedFiles(current.record)) referenced.add(ref.sha256);
      // A list of outputs too long for the record is a file: the outputs it lists are referenced too.
      const listed = current.record.result?.outputsFile;
      if (listed !== undefined) {
        for (const sha256 of await listedOutputs(cluster.files, listed)) referenced.add(sha256);
      }
      // So is a layout too long for the record: the files a queued job's .blend uses.
      const layout = current.record.spec.layoutFile;
      if (layout !== undefined) {
        for (const sha256 of await listedLayout(cluster.files, layout)) referenced.add(sha256);
      }
    }
    return await collectFiles(cluster.files, referenced, olderThanMs);
  }

  /**
   * Forget an ended job in the cluster (its record), so the name is free.
   *
   * @param name A job's name.
   * @returns Settles once the record is removed.
   * @throws {RangeError} When there is no job of that name.
   * @throws {Error} When the job has not ended.
   */
  override async removeJob(name: string): Promise<void> {
    super.removeJob(name);
    await this.#host?.forgotten(name);
  }

  /**
   * Stop following the cluster and remove this host's work root, once every job added here has reached the
   * cluster. Jobs go on in the cluster unless `killJobs`. Calling it again returns the same promise.
   *
   * @param options `killJobs` to kill this namespace's unfinished jobs first.
   * @returns Settles once the connection is closed.
   */
  override close(options: NatsCloseOptions = {}): Promise<void> {
    this.#closing ??= (async () => {
      if (options.killJobs === true) await this.killAll().catch(() => {});
      await super.close();
    })();
    return this.#closing;
  }

  /**
   * Queue a job in the cluster; see {@linkcode JobManager.addJob}.
   *
   * @param options The script, its data, how to run it, and the tags a worker needs.
   * @returns The job, whose `result()` settles when it ends on some worker.
   * @throws {InvalidJobError} When an option is wrong, or a queued or active job has the name.
   * @throws {Error} When the manager is closing (`close({ killJobs })` kills first: no job slips in meanwhile).
   */
  override addJob<T extends JsonObject = JsonObject>(options: NatsAddJobOptions): Job<T> {
    if (this.#closing !== undefined) throw new Error("Cannot add job as the JobManager is closed");
    return super.addJob<T>(options);
  }

  get #backend(): NatsBackend {
    return BACKENDS.get(this) as NatsBackend;
  }

  get #host(): NatsHost | undefined {
    return this.#backend.connectedHost;
  }

  #connected(): Promise<NatsHost> {
    return this.#backend.host();
  }
}

/**
 * The SHA-256s of the outputs a spilled list (`outputsFile`) names. A list that cannot be read or is too large keeps
 * nothing listed safe: collecting then stops, rather than remove files a record may still mean.
 */
/** The files a layout file lists (`JobSpec.layoutFile`). */
async function listedLayout(store: ObjectStore, file: FileRef): Promise<string[]> {
  if (file.size > OUTPUTS_FILE_LIMIT) throw new Error(`Cannot collect files: a layout of ${file.size} bytes`);
  const got = await store.getBlob(file.sha256);
  if (got === null) return [];
  const { files } = (JSON.parse(new TextDecoder().decode(got)) ?? {}) as { files?: unknown };
  if (!Array.isArray(files)) return [];
  return files.map((entry) => (entry as { file?: { sha256?: unknown } })?.file?.sha256)
    .filter((sha256): sha256 is string => typeof sha256 === "string");
}

async function listedOutputs(store: ObjectStore, file: FileRef): Promise<string[]> {
  if (file.size > OUTPUTS_FILE_LIMIT) throw new Error(`Cannot collect files: an outputs list of ${file.size} bytes`);
  const got = await store.getBlob(file.sha256);
  if (got === null) return [];
  const listed: unknown = JSON.parse(new TextDecoder().decode(got));
  if (!Array.isArray(listed)) return [];
  return listed.map((output) => (output as { file?: { sha256?: unknown } })?.file?.sha256)
    .filter((sha256): sha256 is string => typeof sha256 === "string");
}
