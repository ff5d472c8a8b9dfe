/**
 * The bgproc worker: a loop that pulls jobs from a namespace's JetStream
 * work queue and runs each on the local backend (in any of its modes), heartbeating it, publishing its progress and log
 * lines, obeying cancels, and recording its result or report in KV before
 * acking.
 */

import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JobDefaults } from "../api/checked_job.ts";
import { checkPermissions, type NatsSigningOptions, resolveOptions } from "../api/options.ts";
import { loadSigning } from "./_signing.ts";
import { checkNatsOptions } from "./_check_options.ts";
import { blenderVersion, findBlender } from "../blender.ts";
import { LocalJobs } from "../local/jobs.ts";
import { type Cluster, explainRefusal, type NatsOptions, openCluster } from "./_connection.ts";
import { FileCache, Uploader } from "./_files.ts";
import { checkNamespace, checkTags } from "./_protocol.ts";
import { type WorkerEvent, WorkerLoop } from "./_worker_loop.ts";

export type { WorkerEvent };

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
   * @default {"fork"}
   */
  mode?: "process" | "pool" | "fork";
  /**
   * This worker's tags: it takes jobs that require any subset of them (at most 6 tags).
   *
   * @default {[]}
   */
  tags?: string[];
  /**
   * GPUs for the slots: slot `i` renders on `gpus[i % gpus.length]` (see `JobManagerOptions.gpus`).
   *
   * @default {[]}
   */
  gpus?: string[];
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
   * The attempts a job gets on the consumers this worker makes (their MaxDeliver is `3 × maxAttempts + 2`: room for
   * deliveries a worker declines, which spend no attempt).
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
  /**
   * Signed jobs and results: this worker signs each result with `key`, and with `trust` runs a job only when one of
   * those host keys signed it (see `NatsSigningOptions`).
   */
  signing?: NatsSigningOptions;
  /** Called with what the worker does, for a CLI to print. */
  onEvent?: (event: WorkerEvent) => void;
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
  if ((options.nats as { signing?: unknown }).signing !== undefined) {
    throw new TypeError(`${what} as 'nats.signing' is a host's option: a worker's keys go in 'signing', beside 'nats'`);
  }
  checkNatsOptions(
    what,
    { ...options.nats, ...(options.signing === undefined ? {} : { signing: options.signing }) },
    "nats.",
    "",
  );
  const tags = checkTags(what, "tags", options.tags ?? []);
  if (tags.length > 6) {
    throw new RangeError(`${what} as 'tags' may hold at most 6 tags: current count is ${tags.length}`);
  }
  const slots = positiveInteger(what, "maxWorkers", options.maxWorkers ?? 2);
  const maxAttempts = positiveInteger(what, "maxAttempts", options.maxAttempts ?? 3);
  const ackWaitMs = positiveInteger(what, "ackWaitMs", options.ackWaitMs ?? 30_000);
  const graceMs = Math.max(0, options.graceMs ?? 30_000);
  const mode = options.mode ?? "fork";
  const emit = options.onEvent ?? (() => {});
  options.signal?.throwIfAborted();
  const signing = await loadSigning(options.signing); // A bad key file fails here, before anything starts.

  const machine = hostname();
  const id = `${machine}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  // One attempt per delivery: the cluster retries (a delivery is an attempt), never the worker's own Blenders.
  const local = startLocalJobs({
    maxWorkers: slots,
    maxAttempts: 1,
    mode,
    ...(options.gpus === undefined ? {} : { gpus: options.gpus }),
    ...(options.blender === undefined ? {} : { blender: options.blender }),
    ...(options.workDir === undefined ? {} : { workDir: options.workDir }),
  });
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
  const version = await local.blenderVersion().catch(() => "unknown");
  const loop = new WorkerLoop({
    id,
    machine,
    cluster,
    cache,
    uploader: new Uploader(cluster.files),
    local: { jobs: local.jobs, defaults: local.defaults, blenderVersion: version },
    mode,
    slots,
    tags,
    gpus: options.gpus ?? [],
    ackWaitMs,
    maxAttempts,
    graceMs,
    signing,
    emit,
  });
  const onAbort = () => loop.stop();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await loop.run().catch((error) =>
      Promise.reject(explainRefusal(cluster.url, error, "run a worker (are they a host's?)"))
    );
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    await local.jobs.close();
    await cache.close();
    await cluster.workers.delete(id).catch(() => {});
    await cluster.nc.drain().catch(() => {});
    if (tempCache !== undefined) await Deno.remove(tempCache, { recursive: true }).catch(() => {});
  }
}

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
    gpus?: readonly string[];
    blender?: string;
    workDir?: string;
  },
): { jobs: LocalJobs; defaults: JobDefaults; blenderVersion: () => Promise<string> } {
  const resolved = resolveOptions({
    maxWorkers: options.maxWorkers,
    maxAttempts: options.maxAttempts,
    mode: options.mode,
    ...(options.gpus === undefined ? {} : { gpus: options.gpus }),
    // A worker is there to run jobs: its Blenders are warm before the first one, and stay so after a kill.
    prewarm: true,
    ...(options.blender === undefined ? {} : { blender: options.blender }),
    ...(options.workDir === undefined ? {} : { workDir: options.workDir }),
  });
  const blender = findBlender(resolved.blender === undefined ? {} : { blender: resolved.blender });
  checkPermissions(blender, resolved.workDir ?? tmpdir());
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
