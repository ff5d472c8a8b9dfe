/** The public data types of the job API. */

import type { DropReason } from "./errors.ts";
import type { JobOutput } from "./local/job/outputs.ts";
import type { JobTimings } from "./timings.ts";

/** A value JSON can carry. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** A JSON object: what `passed_data` and `python_data` are. */
export type JsonObject = { [key: string]: JsonValue };

/** Where a job is in its life, as the original add-on named it. */
export type JobState = "QUEUED" | "ACTIVE" | "COMPLETED" | "DROPPED";

/** What a completed job gives back. */
export interface JobResult<T extends JsonObject = JsonObject> {
  /** The job's name. */
  readonly name: string;
  /** The dict the script left in `python_data` (`{}` when it set none). */
  readonly pythonData: T;
  /** The data blocks the script left in `data_blocks`, or `null` when it set none. */
  readonly dataBlocks: DataBlocks | null;
  /**
   * The files the job wrote: everything under its folder (where its private copy of `blendFile` is, so `//`
   * paths such as Blender's `//renders/frame_` land there) but bgproc's own files, moved into the job's
   * `outputDir` with their relative paths, or, without one, into the manager's work root until `removeJob` or
   * `close()`; and every file Blender said it saved elsewhere (`Saved: '…'`), listed where it is.
   */
  readonly outputs: readonly JobOutput[];
  /** What Blender printed to stdout on the successful attempt (its tail, when longer than `outputLimit`). */
  readonly stdout: string;
  /** What Blender printed to stderr on the successful attempt (its tail, when longer than `outputLimit`). */
  readonly stderr: string;
  /** How many attempts were started, this one included. */
  readonly attempts: number;
  /** When the successful attempt's Blender was started. */
  readonly startedAt: Date;
  /** When it ended. */
  readonly endedAt: Date;
  /** `endedAt - startedAt`, in milliseconds. */
  readonly durationMs: number;
  /** The successful attempt's command line, quoted for a POSIX shell. */
  readonly commandLine: string;
  /** Where the job's time went: its queue wait, each attempt, and the phases of each (see {@linkcode JobTimings}). */
  readonly timings: JobTimings;
}

/** Counts of the manager's jobs by state, and its free workers. */
export interface JobCounts {
  /** Jobs waiting for a worker. */
  readonly queued: number;
  /** Jobs running now (waiting for a retry included). */
  readonly active: number;
  /** Jobs that completed. */
  readonly completed: number;
  /** Jobs that were dropped. */
  readonly dropped: number;
  /** Workers free for another job. */
  readonly availableWorkers: number;
}

/**
 * Whether the manager can start Blender: `"failing"` once Blender failed at
 * start-up more often than the restart intensity allows; then no job is
 * started (queued and new jobs are dropped with reason `"start-failed"`)
 * until `retryAt`, and the next job that reaches Blender's Python makes it
 * `"ok"` again.
 */
export type ManagerHealth =
  | { readonly status: "ok" }
  | {
    readonly status: "failing";
    /** The last start-up failure. */
    readonly reason: string;
    /** How many start-up failures fell within the period. */
    readonly failures: number;
    /** When the manager began failing. */
    readonly since: Date;
    /** When it will try to start Blender again. */
    readonly retryAt: Date;
  };

/** One line of a job's output, as `job.logs()` yields it. */
export interface LogLine {
  /** The attempt that printed it. */
  readonly attempt: number;
  /** Where Blender printed it. */
  readonly stream: "stdout" | "stderr";
  /** The line, without its newline (decoded as UTF-8, bad bytes replaced). */
  readonly line: string;
}

/**
 * The `bpy.data` collections data blocks are grouped by: every collection of
 * data blocks that Blender 3.4, 4.3 or 5.2 has. Some exist only in some
 * versions: `grease_pencils_v3` only in 4.3 (5.0 renamed it
 * `grease_pencils`), `annotations` from 5.0 (the legacy grease pencil, which
 * 3.4 and 4.3 keep in `grease_pencils`).
 */
export const DATA_BLOCK_COLLECTIONS = [
  "actions",
  "annotations",
  "armatures",
  "brushes",
  "cache_files",
  "cameras",
  "collections",
  "curves",
  "fonts",
  "grease_pencils",
  "grease_pencils_v3",
  "hair_curves",
  "images",
  "lattices",
  "lightprobes",
  "lights",
  "linestyles",
  "masks",
  "materials",
  "meshes",
  "metaballs",
  "movieclips",
  "node_groups",
  "objects",
  "paint_curves",
  "palettes",
  "particles",
  "pointclouds",
  "scenes",
  "shape_keys",
  "sounds",
  "speakers",
  "texts",
  "textures",
  "volumes",
  "workspaces",
  "worlds",
] as const;

/** One of {@linkcode DATA_BLOCK_COLLECTIONS}. */
export type DataBlockCollection = typeof DATA_BLOCK_COLLECTIONS[number];

/** One data block of a job's returned library. */
export interface DataBlockInfo {
  /** Its name. */
  readonly name: string;
  /** Its type: an object's `type` (`"MESH"`, `"CAMERA"`, ...), else its `id_type` (`"MATERIAL"`, ...). */
  readonly type: string;
  /**
   * Whether the script put it in `data_blocks` itself; `false` for the
   * blocks the library holds because those use them (an object's mesh, its
   * materials, ...).
   */
  readonly returned: boolean;
}

/**
 * The data blocks a job handed back, as the add-on's retrieved data blocks
 * were: every block its library .blend holds (fake user set), grouped by
 * collection (every collection is present, empty when unused). That is the
 * blocks the script put in `data_blocks` (`returned: true`, first, in the
 * script's order) and everything they use (`returned: false`): meshes,
 * materials, shape keys, ...
 *
 * Passed on (`passedDataBlocks`, `appendDataBlocks`), it selects the
 * returned blocks, which bring the others with them.
 */
export type DataBlocks =
  & { readonly path: string }
  & { readonly [C in DataBlockCollection]: readonly DataBlockInfo[] };

/**
 * Data blocks to pass into a job: a .blend file (`from`) and, per
 * collection, the names to take from it. A job's `DataBlocks` result can be
 * passed as it is, to chain jobs.
 */
export type DataBlockSelection =
  & { readonly from: string }
  & { readonly [C in DataBlockCollection]?: readonly string[] };

/**
 * One event of {@linkcode JobManager.events}: a job's state change (QUEUED
 * when added, ACTIVE at each attempt's start, COMPLETED or DROPPED at its
 * end), its progress, one line of its output, or the manager's health.
 *
 * @example Follow every job
 * ```ts ignore
 * import { JobManager } from "@bgproc/blender";
 *
 * await using manager = new JobManager();
 * for await (const event of manager.events()) {
 *   if (event.type === "state") console.log(event.name, event.state, event.attempt);
 * }
 * ```
 */
export type ManagerEvent =
  | {
    readonly type: "state";
    readonly name: string;
    readonly state: JobState;
    readonly attempt: number;
    readonly reason?: DropReason;
  }
  | { readonly type: "progress"; readonly name: string; readonly progress: number }
  | {
    readonly type: "log";
    readonly name: string;
    readonly attempt: number;
    readonly stream: "stdout" | "stderr";
    readonly line: string;
  }
  | { readonly type: "health"; readonly health: ManagerHealth }
  /**
   * Over NATS: a message or record of the namespace that is not bgproc's (not UTF-8, not JSON, or not the protocol's
   * shape) was skipped and dead-lettered (`NatsJobManager.unreadableMessages()`). Said once per kind of subject and
   * problem.
   */
  | { readonly type: "unreadable"; readonly subject: string; readonly problem: string };
