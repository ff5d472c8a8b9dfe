/**
 * Many machines: run bgproc jobs on workers anywhere, fed by NATS JetStream,
 * with the local `JobManager`'s API. A worker ({@linkcode runWorker}, or
 * `bgproc worker --nats URL`) runs on each machine with Blender; any host
 * submits and follows jobs with {@linkcode NatsJobManager}. Jobs, results
 * and reports live in JetStream (work queue, KV, object store), so they
 * outlive hosts and workers.
 *
 * This is a separate door from `mod.ts` because it brings the NATS client
 * (npm `@nats-io/*`) along.
 *
 * ```ts ignore
 * import { NatsJobManager } from "@bgproc/blender/nats";
 *
 * await using manager = await NatsJobManager.connect({ nats: { servers: "nats://127.0.0.1:4222" } });
 * const job = manager.addJob({ name: "shot-010", script: "./render.py", passedData: { frame: 10 } });
 * for await (const progress of job.progressUpdates()) console.log(progress);
 * const { pythonData } = await job.result();
 * ```
 *
 * @module
 */

export type { NatsOptions } from "./_connection.ts";
export { NatsConnectionError } from "./errors.ts";
export {
  type DeadLetter,
  type FileStats,
  type NatsAddJobOptions,
  type NatsCloseOptions,
  NatsJobManager,
  type NatsJobManagerOptions,
  type UnreadableMessage,
  type WorkerInfo,
} from "./manager.ts";
export { runWorker, type RunWorkerOptions, type WorkerEvent } from "./worker.ts";
export { runWorkerUntilSignal, WORKER_USAGE, workerMain } from "./worker_main.ts";
