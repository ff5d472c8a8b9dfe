/**
 * Run Blender Python scripts in separate background Blender processes, from
 * Deno: queued and supervised, with live progress, retries, timeouts, and
 * each script's `python_data` as a typed result.
 *
 * The script runs unmodified inside Blender, in fresh globals, with
 * `passed_data` (and each of its keys as a variable), `source_blend_file`,
 * `passed_data_blocks` and `update_job_progress(x)`; it hands back
 * `python_data`, a JSON-serialisable dict, and `data_blocks`, Blender data
 * that comes back as a .blend library (`readBlendFile` reads .blend files
 * without Blender; `appendDataBlocks` puts blocks into a .blend file).
 *
 * ```ts ignore
 * import { JobManager } from "@bgproc/blender";
 *
 * await using manager = new JobManager({ maxWorkers: 2 });
 * const job = manager.addJob({ script: "./add_monkey.py", passedData: { size: 2 } });
 * for await (const progress of job.progressUpdates()) console.log(`${Math.round(progress * 100)} %`);
 * const { pythonData } = await job.result();
 * ```
 *
 * @module
 */

export {
  type BlendFileInfo,
  DEFAULT_MAX_BYTES,
  readBlendFile,
  type ReadBlendFileOptions,
  readBlendFileSync,
} from "./src/blend/read.ts";
export type { BlendId } from "./src/blend/ids.ts";
export { blenderVersion, findBlender, type FindBlenderOptions } from "./src/blender.ts";
export {
  BlenderNotFoundError,
  BlendFileError,
  type DropReason,
  InvalidJobError,
  type JobDroppedDetails,
  JobDroppedError,
  NatsBackendUnavailableError,
  type PythonError,
  type PythonFrame,
  type SourceLocation,
  WorkRootError,
} from "./src/errors.ts";
export { JobManager } from "./src/api/job_manager.ts";
export type { Job } from "./src/api/job.ts";
export type {
  AddJobOptions,
  AppendDataBlocksOptions,
  AppendDataBlocksResult,
  DependenciesOptions,
  GetJobNamesOptions,
  JobManagerNatsOptions,
  JobManagerOptions,
  NatsCredentials,
  NatsSigningOptions,
  NatsTlsOptions,
  ProgressSource,
  RestartIntensityOptions,
  RetryOptions,
} from "./src/api/options.ts";
export type { Dependencies, Dependency, DependencyKind } from "./src/deps/dependencies.ts";
export type { JobOutput, OutputKind } from "./src/local/job/outputs.ts";
export type { AttemptTiming, JobPhase, JobTimings, PhaseTiming } from "./src/timings.ts";
export { chunkFrames, formatFrames, MAX_FRAME, parseFrames } from "./src/render/frames.ts";
export {
  type FailedChunk,
  type RenderedFrame,
  type RenderFailedDetails,
  RenderFailedError,
} from "./src/render/errors.ts";
export type {
  Render,
  RenderChunk,
  RenderChunkResult,
  RenderOptions,
  RenderProgress,
  RenderResult,
  RenderVideoOptions,
} from "./src/render/render.ts";
export { DATA_BLOCK_COLLECTIONS } from "./src/types.ts";
export type {
  DataBlockCollection,
  DataBlockInfo,
  DataBlocks,
  DataBlockSelection,
  JobCounts,
  JobResult,
  JobState,
  JsonObject,
  JsonValue,
  LogLine,
  ManagerEvent,
  ManagerHealth,
} from "./src/types.ts";
