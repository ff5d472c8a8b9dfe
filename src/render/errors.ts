/**
 * The error a render rejects with when a chunk of its frames, or its video step, is finally dropped.
 *
 * @module
 */

import type { JobDroppedError } from "../errors.ts";
import { formatFrames } from "./frames.ts";

/** One frame a render wrote: its number and its file. */
export interface RenderedFrame {
  /** The frame number. */
  readonly frame: number;
  /** The image file's absolute path. */
  readonly path: string;
}

/** A chunk job of a render that was dropped after its last attempt. */
export interface FailedChunk {
  /** The chunk job's name. */
  readonly name: string;
  /** The frames it was to render. */
  readonly frames: readonly number[];
  /** Why it was dropped, with the Python traceback and Blender's output. */
  readonly error: JobDroppedError;
}

/** The details a {@linkcode RenderFailedError} carries. */
export interface RenderFailedDetails {
  /** The render's name. */
  readonly renderName: string;
  /** `"frames"` when chunks were dropped, `"video"` when the frames are all there but the video step failed. */
  readonly stage: "frames" | "video";
  /** The chunks that were dropped (empty when the video step failed). */
  readonly failedChunks: readonly FailedChunk[];
  /** The frames that were not rendered, sorted. */
  readonly failedFrames: readonly number[];
  /** The frames that were rendered, sorted by frame: their files stay on disk. */
  readonly renderedFrames: readonly RenderedFrame[];
  /** The folder the frames are in. */
  readonly outputDir: string;
  /** The dropped video job's error, when the video step failed. */
  readonly videoError?: JobDroppedError;
}

/**
 * A render did not complete: chunks of its frames were dropped (after `maxAttempts` attempts each, or killed),
 * or its video step failed. The frames the other chunks rendered stay on disk and are listed, so only the
 * failed frames need rendering again. `cause` is the first chunk's (or the video job's) `JobDroppedError`.
 *
 * @example Render the failed frames again
 * ```ts ignore
 * import { formatFrames, JobManager, RenderFailedError } from "@bgproc/blender";
 *
 * await using manager = new JobManager({ maxAttempts: 2 });
 * const options = { blendFile: "shot.blend", frames: "1-48", chunk: 8, outputDir: "out" };
 * try {
 *   await manager.render(options).result();
 * } catch (error) {
 *   if (!(error instanceof RenderFailedError)) throw error;
 *   await manager.render({ ...options, frames: formatFrames(error.failedFrames) }).result();
 * }
 * ```
 */
export class RenderFailedError extends Error implements RenderFailedDetails {
  /** The render's name. */
  readonly renderName: string;
  /** `"frames"` when chunks were dropped, `"video"` when only the video step failed. */
  readonly stage: "frames" | "video";
  /** The chunks that were dropped. */
  readonly failedChunks: readonly FailedChunk[];
  /** The frames that were not rendered, sorted. */
  readonly failedFrames: readonly number[];
  /** The frames that were rendered, sorted by frame. */
  readonly renderedFrames: readonly RenderedFrame[];
  /** The folder the frames are in. */
  readonly outputDir: string;
  /** The dropped video job's error, when the video step failed. */
  readonly videoError?: JobDroppedError;

  /**
   * Make the error from what failed.
   *
   * @param details The failed chunks or video step, and the frames that were rendered.
   */
  constructor(details: RenderFailedDetails) {
    super(describe(details), { cause: details.failedChunks[0]?.error ?? details.videoError });
    this.name = "RenderFailedError";
    this.renderName = details.renderName;
    this.stage = details.stage;
    this.failedChunks = details.failedChunks;
    this.failedFrames = details.failedFrames;
    this.renderedFrames = details.renderedFrames;
    this.outputDir = details.outputDir;
    if (details.videoError !== undefined) this.videoError = details.videoError;
  }
}

function describe(details: RenderFailedDetails): string {
  const kept = `${details.renderedFrames.length} rendered frame${details.renderedFrames.length === 1 ? "" : "s"} ` +
    `${details.renderedFrames.length === 1 ? "is" : "are"} in ${details.outputDir}`;
  if (details.stage === "video") {
    const why = details.videoError === undefined ? "it failed" : details.videoError.summary;
    return `Render '${details.renderName}' made every frame but not its video: ${why}; the ${kept}`;
  }
  const chunks = details.failedChunks.map(({ name, error }) =>
    `${name} (${error.reason} after ${error.attempts} attempt${error.attempts === 1 ? "" : "s"}: ${error.summary})`
  );
  return `Render '${details.renderName}' did not render frames ${formatFrames(details.failedFrames)}: ` +
    `${chunks.join("; ")}; the ${kept}`;
}
