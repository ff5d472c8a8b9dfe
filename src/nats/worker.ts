/**
 * The bgproc worker: a loop that pulls jobs from a namespace's JetStream
 * work queue and runs each on the local backend (in any of its modes), heartbeating it, publishing its progress and log
 * lines, obeying cancels, and recording its result or report in KV before
 * acking.
 */

import { droppedBeforeBlender } from "../_dropped.ts";
import { tmpdir } from "node:os";
import { basename, isAbsolute, join, relative } from "node:path";
import type { Consumer, JsMsg } from "@nats-io/jetstream";
import type { Subscription } from "@nats-io/transport-node";
import { JobDroppedError } from "../errors.ts";
import { checkJob, type JobDefaults } from "../api/checked_job.ts";
import { checkPermissions, resolveOptions } from "../api/options.ts";
import { blenderVersion, findBlender } from "../blender.ts";
import type { Job } from "../api/job.ts";
import { LocalJobs } from "../local/jobs.ts";
import type { DataBlockInfo, DataBlockSelection, JobResult, JsonObject } from "../types.ts";
import { type Cluster, ensureConsumer, type NatsOptions, openCluster, WORKER_TTL_MS } from "./_connection.ts";
import { dropLost, listenMaxDeliveries, publishDeadLetter } from "./_dead_letter.ts";
import { FileCache, Uploader } from "./_files.ts";
import {
  checkNamespace,
  checkTags,
  encode,
  type FileRef,
  type JobRecord,
  type QueueMessage,
  RECORD_INLINE_LIMIT,
  type RecordedOutput,
  type RecordedResult,
  tagSubsets,
  type WorkerInfo,
} from "./_protocol.ts";
import { ended, mutateRecord, readRecord } from "./_records.ts";

/** Options of {@linkcode runWorker}. */
export interface RunWorkerOptions {
  /** Where the NATS server is, and the namespace. */
  nats: NatsOptions;
  /**
   * How many jobs run at once (the local manager's `maxWorkers`).
   *
   * @default {2}
   */
  maxWorkers?: number;
  /**
   * How the local manager runs Blender.
   *
   * @default {"process"}
   */
  mode?: "process" | "pool" | "fork";
  /**
   * This worker's tags: it takes jobs that require any subset of them (at most 6 tags).
   *
   * @default {[]}
   */
  tags?: string[];
  /**
   * The Blender executable.
   *
   * @default {$BLENDER, else `blender` on PATH}
   */
  blender?: string;
  /**
   * The folder for the local manager's work root and the file cache
   * (`<workDir>/bgproc-files`, kept across runs).
   *
   * @default {the system's temporary folder, with a cache removed at exit}
   */
  workDir?: string;
  /** Stops the worker gracefully when aborted (as SIGTERM does in {@linkcode workerMain}). */
  signal?: AbortSignal;
  /**
   * How long a job may go without this worker's heartbeat before the server
   * redelivers it, in ms (set on the queue's consumers when this worker makes them).
   *
   * @default {30000}
   */
  ackWaitMs?: number;
  /**
   * MaxDeliver of the consumers this worker makes: the most attempts any job can get.
   *
   * @default {3}
   */
  maxAttempts?: number;
  /**
   * After a stop, how long running jobs may take to finish before they are
   * killed and handed back to the queue, in ms.
   *
   * @default {30000}
   */
  graceMs?: number;
  /** Called with what the worker does, for a CLI to print. */
  onEvent?: (event: WorkerEvent) => void;
}

/** What a worker reports to {@linkcode RunWorkerOptions.onEvent}. */
export type WorkerEvent =
  | { readonly type: "ready"; readonly info: WorkerInfo }
  | { readonly type: "started"; readonly name: string; readonly attempt: number }
  | { readonly type: "completed"; readonly name: string; readonly attempt: number }
  | { readonly type: "failed"; readonly name: string; readonly attempt: number; readonly report: string }
  | { readonly type: "handed-back"; readonly name: string }
  | { readonly type: "stopping" }
  | { readonly type: "error"; readonly error: unknown };

interface Running {
  readonly name: string;
  readonly msg: JsMsg;
  local: Job | undefined;
  cancelled: boolean;
  handBack: boolean;
}

/**
 * Run a bgproc worker until `signal` aborts: pulls jobs from the namespace's
 * work queue (those requiring any subset of `tags`) and runs up to
 * `maxWorkers` at once in local Blenders (in `mode`), as a local `JobManager` would.
 *
 * @param options The server, slots, mode, tags.
 * @returns Settles once the worker stopped: running jobs finished (or were handed back), the connection closed.
 * @throws {NatsConnectionError} When the server cannot be reached.
 * @throws {BlenderNotFoundError} When no Blender is found.
 * @example Run a worker in-process
 * ```ts ignore
 * import { runWorker } from "@bgproc/blender/nats";
 *
 * const stop = new AbortController();
 * Deno.addSignalListener("SIGTERM", () => stop.abort());
 * await runWorker({ nats: { servers: "nats://127.0.0.1:4222" }, maxWorkers: 2, tags: ["gpu"], signal: stop.signal });
 * ```
 */
export async function runWorker(options: RunWorkerOptions): Promise<void> {
  const what = "Cannot run worker";
  const namespace = checkNamespace(what, options.nats.namespace ?? "default");
  const tags = checkTags(what, "tags", options.tags ?? []);
  if (tags.length > 6) {
    throw new RangeError(`${what} as 'tags' may hold at most 6 tags: current count is ${tags.length}`);
  }
  const slots = positiveInteger(what, "maxWorkers", options.maxWorkers ?? 2);
  const maxAttempts = positiveInteger(what, "maxAttempts", options.maxAttempts ?? 3);
  const ackWaitMs = positiveInteger(what, "ackWaitMs", options.ackWaitMs ?? 30_000);
  const graceMs = Math.max(0, options.graceMs ?? 30_000);
  const mode = options.mode ?? "process";
  const emit = options.onEvent ?? (() => {});
  options.signal?.throwIfAborted();

  const machine = hostname();
  const id = `${machine}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const local = startLocalJobs({ maxWorkers: slots, maxAttempts: 1, mode, ...options });
  const tempCache = options.workDir === undefined
    ? await Deno.makeTempDir({ dir: tmpdir(), prefix: "bgproc-files-" })
    : undefined;
  let cluster: Cluster;
  try {
    cluster = await openCluster({ name: `bgproc-worker ${id}`, ...options.nats }, namespace);
  } catch (error) {
    await local.jobs.close();
    if (tempCache !== undefined) await Deno.remove(tempCache, { recursive: true }).catch(() => {});
    throw error;
  }
  const cache = new FileCache(cluster.files, tempCache ?? join(options.workDir ?? tmpdir(), "bgproc-files"));
  const uploader = new Uploader(cluster.files);
  const running = new Set<Running>();
  const stop = new AbortController();
  const waiters = new Set<() => void>();
  const changed = () => new Promise<void>((resolve) => waiters.add(resolve));
  const wake = () => {
    for (const waiter of waiters) waiter();
    waiters.clear();
  };
  const onAbort = () => {
    emit({ type: "stopping" });
    stop.abort();
    wake();
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });

  const startedAt = new Date().toISOString();
  const blenderVersion = await local.blenderVersion().catch(() => "unknown");
  const info = (): WorkerInfo => ({
    id,
    hostname: machine,
    pid: Deno.pid,
    blenderVersion,
    mode,
    slots,
    tags,
    running: [...running].map((job) => job.name),
    startedAt,
    heartbeatAt: new Date().toISOString(),
  });
  const advertise = () => void cluster.workers.put(id, encode(info())).catch((error) => emit({ type: "error", error }));
  const advertiser = setInterval(advertise, WORKER_TTL_MS / 5);
  const advisories = listenMaxDeliveries(cluster, (error) => emit({ type: "error", error }));

  const heartbeatMs = Math.max(50, Math.floor(ackWaitMs / 3));

  async function runMessage(job: Running): Promise<void> {
    const { msg } = job;
    const attempt = msg.info.deliveryCount;
    const queued = msg.json<QueueMessage>();
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    let cancels: Subscription | undefined;
    try {
      const current = await readRecord(cluster.jobs, queued.name);
      if (current === null || current.record.id !== queued.id || ended(current.record)) return msg.ack();
      if (attempt > current.record.maxAttempts) {
        await dropLost(cluster, queued, attempt - 1);
        return msg.ack();
      }
      heartbeat = setInterval(() => msg.working(), heartbeatMs);
      cancels = cluster.nc.subscribe(cluster.names.jobSubject(queued.name, "cancel"), {
        callback: (_error, request) => {
          job.cancelled = true;
          void job.local?.kill().catch(() => {});
          request.respond(encode({ worker: id }));
        },
      });
      const mine = await mutateRecord(cluster.jobs, queued.name, (record) => {
        if (record.id !== queued.id || ended(record)) return null;
        return { ...record, state: "ACTIVE", worker: id, attempts: attempt, progress: 0 };
      });
      if (mine === null) return msg.ack();
      emit({ type: "started", name: queued.name, attempt });
      advertise();
      let local: Job;
      try {
        local = await startLocal(mine);
      } catch (error) {
        // Its files cannot be fetched, or the local manager rejects the job: the job's failure, not the worker's.
        const summary = `it cannot start on worker ${id}: ${error instanceof Error ? error.message : String(error)}`;
        const dropped = droppedBeforeBlender(mine.name, "start-failed", summary, attempt, { cause: error });
        await failed(job, mine, attempt, dropped);
        return;
      }
      job.local = local;
      if (job.cancelled) void local.kill();
      void pump(mine.name, mine.id, attempt, local);
      let result: JobResult;
      try {
        result = await local.result();
      } catch (error) {
        if (!(error instanceof JobDroppedError)) throw error;
        await failed(job, mine, attempt, error);
        return;
      }
      const recorded = await recordResult(result, attempt, outputsFolder(local.name));
      const written = await mutateRecord(cluster.jobs, queued.name, (record) => {
        if (record.id !== queued.id || ended(record)) return null;
        return { ...record, state: "COMPLETED", worker: id, attempts: attempt, progress: 1, result: recorded };
      });
      msg.ack();
      if (written !== null) emit({ type: "completed", name: queued.name, attempt });
    } catch (error) {
      // Not the job's fault (NATS trouble, a file that could not be fetched): another attempt may do better.
      emit({ type: "error", error });
      msg.nak(1000);
    } finally {
      clearInterval(heartbeat);
      cancels?.unsubscribe();
      if (job.local !== undefined) {
        await job.local.result().catch(() => {});
        await local.jobs.remove(job.local.name);
        await Deno.remove(outputsFolder(job.local.name), { recursive: true }).catch(() => {});
      }
      running.delete(job);
      advertise();
      wake();
    }
  }

  /** Where the worker's local manager keeps a local job's outputs until they are uploaded. */
  function outputsFolder(localName: string): string {
    return join(local.jobs.backend.workRoot, "nats-outputs", localName);
  }

  /** The job's files fetched, its spec checked (it came over the network) and run on the local backend. */
  async function startLocal(record: JobRecord): Promise<Job> {
    const { spec } = record;
    const script = await cache.get(spec.script);
    const blendFile = spec.blendFile === null ? undefined : await cache.get(spec.blendFile);
    let passedDataBlocks: DataBlockSelection | undefined;
    if (spec.passedDataBlocks !== null) {
      passedDataBlocks = { from: await cache.get(spec.passedDataBlocks.file), ...spec.passedDataBlocks.blocks };
    }
    const passedData = spec.passedDataFile === undefined
      ? spec.passedData
      : JSON.parse(await Deno.readTextFile(await cache.get(spec.passedDataFile))) as JsonObject;
    const name = `nats-${crypto.randomUUID().slice(0, 8)}`;
    const checked = checkJob(name, {
      outputDir: outputsFolder(name),
      script,
      passedData,
      args: [...spec.args],
      timeout: spec.timeoutMs,
      ...spec.runOptions,
      ...(blendFile === undefined ? {} : { blendFile }),
      ...(passedDataBlocks === undefined ? {} : { passedDataBlocks }),
    }, local.defaults);
    return local.jobs.run(checked);
  }

  async function pump(name: string, recordId: string, attempt: number, local: Job): Promise<void> {
    const progressSubject = cluster.names.jobSubject(name, "progress");
    const logSubject = cluster.names.jobSubject(name, "log");
    await Promise.all([
      (async () => {
        // Every value on the job's subject; into the record at most every PROGRESS_RECORD_MS, for hosts that join later.
        let lastWrite = 0;
        let writing = false;
        for await (const value of local.progressUpdates()) {
          cluster.nc.publish(progressSubject, encode({ attempt, value }));
          if (writing || Date.now() - lastWrite < PROGRESS_RECORD_MS) continue;
          writing = true;
          lastWrite = Date.now();
          void mutateRecord(cluster.jobs, name, (record) => {
            if (record.id !== recordId || record.state !== "ACTIVE" || record.worker !== id) return null;
            return record.attempts === attempt && value > record.progress ? { ...record, progress: value } : null;
          }).catch((error) => emit({ type: "error", error })).finally(() => writing = false);
        }
      })(),
      (async () => {
        for await (const line of local.logs()) {
          cluster.nc.publish(logSubject, encode({ ...line, attempt }));
        }
      })(),
    ]).catch((error) => emit({ type: "error", error }));
  }

  /** Upload the job's outputs (kept in `folder` by the local manager); paths relative to it. */
  async function recordOutputs(result: JobResult, folder: string): Promise<RecordedOutput[]> {
    const recorded: RecordedOutput[] = [];
    for (const { path, bytes, kind } of result.outputs) {
      const inside = relative(folder, path);
      if (inside.startsWith("..") || isAbsolute(inside)) continue; // Never a file outside the job's own folder.
      recorded.push({ file: await uploader.put(path, basename(path)), path: inside, bytes, kind });
    }
    return recorded;
  }

  async function recordResult(result: JobResult, attempt: number, folder: string): Promise<RecordedResult> {
    let dataBlocks: RecordedResult["dataBlocks"] = null;
    if (result.dataBlocks !== null) {
      const { path, ...collections } = result.dataBlocks;
      const blocks: Record<string, DataBlockInfo[]> = {};
      for (const [collection, list] of Object.entries(collections)) {
        if (list.length > 0) {
          blocks[collection] = list.map((block) => ({ name: block.name, type: block.type, returned: block.returned }));
        }
      }
      dataBlocks = { file: await uploader.put(path, "data_blocks.blend"), blocks };
    }
    let inline = { pythonData: result.pythonData as JsonObject, stdout: result.stdout, stderr: result.stderr };
    let overflow: FileRef | undefined;
    const json = JSON.stringify(inline);
    if (json.length > RECORD_INLINE_LIMIT / 4 && encode(inline).length > RECORD_INLINE_LIMIT) {
      // Too large for a KV value (the server's max payload): the data goes through the object store.
      const file = join(local.jobs.backend.workRoot, `result-${crypto.randomUUID()}.json`);
      await Deno.writeTextFile(file, json);
      try {
        overflow = await uploader.put(file, "result.json");
      } finally {
        await Deno.remove(file).catch(() => {});
      }
      inline = { pythonData: {}, stdout: "", stderr: "" };
    }
    const outputs = await recordOutputs(result, folder);
    return {
      ...inline,
      ...(overflow === undefined ? {} : { overflow }),
      ...(outputs.length === 0 ? {} : { outputs }),
      dataBlocks,
      attempts: attempt,
      startedAt: result.startedAt.toISOString(),
      endedAt: result.endedAt.toISOString(),
      durationMs: result.durationMs,
      commandLine: result.commandLine,
      worker: id,
    };
  }

  async function failed(job: Running, record: JobRecord, attempt: number, error: JobDroppedError): Promise<void> {
    const { msg } = job;
    const reason = job.cancelled ? "killed" : error.reason;
    const report = {
      jobName: record.name,
      reason,
      summary: error.summary,
      attempts: attempt,
      exitCode: error.exitCode,
      signal: error.signal,
      pythonError: error.pythonError,
      stderrTail: error.stderrTail.slice(-TAIL_LIMIT),
      stdoutTail: error.stdoutTail.slice(-TAIL_LIMIT),
      commandLine: error.commandLine,
      ...(error.blender === undefined ? {} : { blender: error.blender }),
    };
    if (job.handBack && !job.cancelled) {
      await mutateRecord(cluster.jobs, record.name, (current) => {
        if (current.id !== record.id || ended(current)) return null;
        return { ...current, state: "QUEUED", worker: null };
      });
      msg.nak();
      emit({ type: "handed-back", name: record.name });
      return;
    }
    const { retry } = record.spec;
    if (reason !== "killed" && retry.on.includes(reason) && attempt < record.maxAttempts) {
      await mutateRecord(cluster.jobs, record.name, (current) => {
        if (current.id !== record.id || ended(current)) return null;
        return { ...current, state: "ACTIVE", worker: null, report };
      });
      msg.nak(Math.min(retry.maxDelayMs, retry.delayMs * retry.factor ** (attempt - 1)));
      emit({ type: "failed", name: record.name, attempt, report: error.report });
      return;
    }
    const written = await mutateRecord(cluster.jobs, record.name, (current) => {
      if (current.id !== record.id || ended(current)) return null;
      return { ...current, state: "DROPPED", worker: id, attempts: attempt, report, deadLetter: reason !== "killed" };
    });
    if (written !== null && reason !== "killed") await publishDeadLetter(cluster, written);
    msg.ack();
    emit({ type: "failed", name: record.name, attempt, report: error.report });
  }

  async function pullLoop(consumer: Consumer): Promise<void> {
    while (!stop.signal.aborted) {
      if (running.size >= slots) {
        await changed();
        continue;
      }
      let msg: JsMsg | null;
      try {
        msg = await consumer.next({ expires: 1000 });
      } catch (error) {
        emit({ type: "error", error });
        await new Promise((resolve) => setTimeout(resolve, 500));
        continue;
      }
      if (msg === null) continue;
      if (stop.signal.aborted) {
        msg.nak();
        break;
      }
      const job: Running = {
        name: msg.json<QueueMessage>().name,
        msg,
        local: undefined,
        cancelled: false,
        handBack: false,
      };
      running.add(job);
      void runMessage(job);
    }
  }

  const jobsDone = async () => {
    while (running.size > 0) await changed();
  };

  try {
    const consumers: Consumer[] = [];
    for (const requires of tagSubsets(tags)) {
      const name = await ensureConsumer(cluster, requires, { ackWaitMs, maxDeliver: maxAttempts });
      consumers.push(await cluster.js.consumers.get(cluster.names.jobsStream, name));
    }
    await cluster.workers.put(id, encode(info()));
    emit({ type: "ready", info: info() });
    await Promise.all(consumers.map(pullLoop));
    // Stopping: let running jobs finish within the grace period, then hand them back.
    const grace = setTimeout(() => {
      for (const job of running) {
        job.handBack = true;
        void job.local?.kill().catch(() => {});
      }
      wake();
    }, graceMs);
    try {
      await jobsDone();
    } finally {
      clearTimeout(grace);
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    clearInterval(advertiser);
    advisories.unsubscribe();
    for (const job of running) {
      job.handBack = true;
      await job.local?.kill().catch(() => {});
    }
    await local.jobs.close();
    await cache.close();
    await cluster.workers.delete(id).catch(() => {});
    await cluster.nc.drain().catch(() => {});
    if (tempCache !== undefined) await Deno.remove(tempCache, { recursive: true }).catch(() => {});
  }
}

/** How often a running job's progress is written into its record, at most, in ms. */
const PROGRESS_RECORD_MS = 500;

/** The most characters of each output tail a report keeps in the record (KV values are small). */
const TAIL_LIMIT = 64 * 1024;

/** This machine's name, without prompting for the `sys` permission: `$HOSTNAME` or `"unknown-host"` without it. */
function hostname(): string {
  try {
    if (Deno.permissions.querySync({ name: "sys", kind: "hostname" }).state === "granted") return Deno.hostname();
  } catch {
    // Fall through.
  }
  return Deno.env.get("HOSTNAME") ?? "unknown-host";
}

function positiveInteger(what: string, option: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${what} as '${option}' must be an integer >= 1: current value is ${value}`);
  }
  return value;
}

/** The worker's local backend, the defaults of its jobs, and its Blender's version. */
function startLocalJobs(
  options: {
    maxWorkers: number;
    maxAttempts: number;
    mode: "process" | "pool" | "fork";
    blender?: string;
    workDir?: string;
  },
): { jobs: LocalJobs; defaults: JobDefaults; blenderVersion: () => Promise<string> } {
  const resolved = resolveOptions({
    maxWorkers: options.maxWorkers,
    maxAttempts: options.maxAttempts,
    mode: options.mode,
    ...(options.blender === undefined ? {} : { blender: options.blender }),
    ...(options.workDir === undefined ? {} : { workDir: options.workDir }),
  });
  const blender = findBlender(resolved.blender === undefined ? {} : { blender: resolved.blender });
  checkPermissions(resolved.mode, blender, resolved.workDir ?? tmpdir());
  const defaults: JobDefaults = {
    timeoutMs: resolved.timeout,
    outputDir: null,
    factoryStartup: resolved.factoryStartup,
    addons: resolved.addons,
    progress: resolved.progress,
  };
  let version: Promise<string> | undefined;
  return {
    jobs: new LocalJobs(resolved, blender),
    defaults,
    blenderVersion: () => version ??= blenderVersion(blender),
  };
}
