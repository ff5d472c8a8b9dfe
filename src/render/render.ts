/**
 * Render jobs, as Flamenco (Blender's render farm) runs them: a frame list split into chunk jobs that run in
 * parallel on the manager's workers, one combined progress, one result with every frame's file, and an optional
 * video made by Blender's own sequencer. Only the public job API is used (`addJob`, `getJob`, `removeJob`), so
 * the chunks run wherever the manager runs jobs.
 *
 * @module
 */

import { droppedBeforeBlender } from "../_dropped.ts";
import { mkdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { InvalidJobError, JobDroppedError } from "../errors.ts";
import type { AddJobOptions } from "../api/options.ts";
import type { Job } from "../api/job.ts";
import type { JsonObject } from "../types.ts";
import { type CheckedRender, checkRender, checkRenderName, defaultVideoPath } from "./_check.ts";
import { formatFrames } from "./frames.ts";
import { CombinedProgress, type RenderProgress } from "./_progress.ts";
import type { RenderOptions, RenderVideoOptions } from "./options.ts";
import { type FailedChunk, type RenderedFrame, RenderFailedError } from "./errors.ts";

export type { RenderProgress };
export type { RenderOptions, RenderVideoOptions };

/** One chunk of a render: a job that renders some of its frames. */
export interface RenderChunk {
  /** The job's name. */
  readonly name: string;
  /** Its frames, sorted. */
  readonly frames: readonly number[];
  /** The job: its state, progress, attempts, logs. */
  readonly job: Job;
}

/** How one chunk of a completed render went. */
export interface RenderChunkResult {
  /** The chunk job's name. */
  readonly name: string;
  /** Its frames, sorted. */
  readonly frames: readonly number[];
  /** How many attempts it took (more than 1 when it was retried). */
  readonly attempts: number;
  /** How long its successful attempt took, in milliseconds. */
  readonly durationMs: number;
}

/** What a completed render gives back. */
export interface RenderResult {
  /** The render's name. */
  readonly name: string;
  /** The folder the frames are in. */
  readonly outputDir: string;
  /** Every frame and its file, sorted by frame. */
  readonly frames: readonly RenderedFrame[];
  /** Each chunk, in frame order. */
  readonly chunks: readonly RenderChunkResult[];
  /** The video file, or `null` when no video was asked for. */
  readonly video: string | null;
  /** From the render's start to its end, in milliseconds. */
  readonly durationMs: number;
}

/** A render in progress, as `JobManager.render` returns it. */
export interface Render {
  /** The render's name. */
  readonly name: string;
  /** Its frames, sorted. */
  readonly frames: readonly number[];
  /** The folder its frames are written to. */
  readonly outputDir: string;
  /** Its chunk jobs, in frame order. */
  readonly chunks: readonly RenderChunk[];
  /** Its progress now. */
  readonly progress: RenderProgress;
  /** Whether it has completed or failed. */
  readonly ended: boolean;
  /**
   * The render's progress as it rises, ending when the render ends (at fraction 1 once every frame is done;
   * a video step follows that). Starts with the current value if it is above 0.
   */
  progressUpdates(): AsyncIterableIterator<RenderProgress>;
  /**
   * The render's result once every frame (and the video) is done.
   *
   * @throws {RenderFailedError} When a chunk is dropped after its last attempt (the other chunks still finish
   * first, and their frames stay), when the render is killed, or when the video step fails.
   */
  result(): Promise<RenderResult>;
  /** Kill every chunk (and the video job); settles once their Blenders are gone. The render then fails. */
  kill(): Promise<void>;
  /**
   * Forget the render's jobs in the manager, and remove its frames when they are in the manager's work root
   * (a folder you named is never touched).
   *
   * @throws {Error} When the render has not ended.
   */
  remove(): Promise<void>;
}

/** What a render needs of a manager: the public job API. */
export interface RenderHost {
  addJob(options: AddJobOptions): Job;
  getJob(name: string): Job | undefined;
  /** `NatsJobManager`'s settles once the cluster forgot the job. */
  removeJob(name: string): void | Promise<void>;
}

/** Where the manager keeps the render scripts and default output folders. */
export interface RenderRuntime {
  /** `render_chunk.py` as the manager's jobs can reach it. */
  readonly chunkScript: string;
  /** `render_video.py` likewise. */
  readonly videoScript: string;
  /** The folder default output folders go in (`<workRoot>/renders/<name>`). */
  readonly rendersDir: string;
  /** The name for a render that has none. */
  readonly defaultName: string;
  /** Whether the manager's jobs read this host's files by their paths (the video job reads the frames so). */
  readonly sharesFiles: boolean;
}

/**
 * Check a render's options and start its chunk jobs.
 *
 * @throws {InvalidJobError} When an option is wrong, the output folder cannot be made, or a job of one of its
 * names is running; nothing is started.
 */
export function startRender(host: RenderHost, runtime: RenderRuntime, options: RenderOptions): Render {
  const checked = checkRender(options);
  const name = options.name === undefined ? runtime.defaultName : checkRenderName(options.name);
  options.signal?.throwIfAborted();
  return new RenderHandle(host, runtime, name, checked, options.signal);
}

function chunkName(render: string, frames: readonly number[]): string {
  const first = frames[0]!;
  const last = frames[frames.length - 1]!;
  return first === last ? `${render}-frame-${first}` : `${render}-frames-${first}-${last}`;
}

class RenderHandle implements Render {
  readonly name: string;
  readonly frames: readonly number[];
  readonly outputDir: string;
  readonly chunks: readonly RenderChunk[];
  readonly #host: RenderHost;
  readonly #runtime: RenderRuntime;
  readonly #checked: CheckedRender;
  readonly #signal: AbortSignal | undefined;
  readonly #progress: CombinedProgress;
  readonly #result: Promise<RenderResult>;
  readonly #started = Date.now();
  #video: Job | undefined;
  #killed = false;
  #ended = false;

  constructor(host: RenderHost, runtime: RenderRuntime, name: string, checked: CheckedRender, signal?: AbortSignal) {
    this.name = name;
    this.frames = checked.frames;
    this.#host = host;
    this.#runtime = runtime;
    this.#checked = checked;
    this.#signal = signal;
    this.outputDir = checked.outputDir ?? join(runtime.rendersDir, name);
    const names = checked.chunks.map((frames) => chunkName(name, frames));
    for (const jobName of [...names, `${name}-video`]) {
      const job = host.getJob(jobName);
      if (job !== undefined && job.state !== "COMPLETED" && job.state !== "DROPPED") {
        throw new InvalidJobError("name", `Cannot render as its job name '${jobName}' is taken by a ${job.state} job`);
      }
    }
    try {
      mkdirSync(this.outputDir, { recursive: true });
    } catch (error) {
      throw new InvalidJobError("outputDir", `Cannot render as ${this.outputDir} cannot be made: ${error}`, {
        cause: error,
      });
    }
    this.chunks = this.#submitChunks(names);
    this.#progress = new CombinedProgress(checked.chunks.map((frames) => frames.length));
    this.#result = this.#run();
    this.#result.then(() => this.#ended = true, () => this.#ended = true);
  }

  get progress(): RenderProgress {
    return this.#progress.current;
  }

  get ended(): boolean {
    return this.#ended;
  }

  progressUpdates(): AsyncIterableIterator<RenderProgress> {
    return this.#progress.follow();
  }

  result(): Promise<RenderResult> {
    return this.#result;
  }

  async kill(): Promise<void> {
    this.#killed = true;
    const jobs = [...this.chunks.map((chunk) => chunk.job), ...(this.#video === undefined ? [] : [this.#video])];
    await Promise.all(jobs.map((job) => job.kill()));
  }

  async remove(): Promise<void> {
    if (!this.#ended) throw new Error(`Cannot remove render '${this.name}' as it has not ended: kill it first`);
    for (const job of [...this.chunks.map((chunk) => chunk.job), ...(this.#video === undefined ? [] : [this.#video])]) {
      if (this.#host.getJob(job.name) === job) void Promise.resolve(this.#host.removeJob(job.name)).catch(() => {});
    }
    if (this.#checked.outputDir === null) await Deno.remove(this.outputDir, { recursive: true }).catch(() => {});
  }

  #submitChunks(names: readonly string[]): RenderChunk[] {
    const { blendFile, overrides, timeout, priority } = this.#checked;
    const chunks: RenderChunk[] = [];
    try {
      this.#checked.chunks.forEach((frames, index) => {
        const passedData: JsonObject = { frames: [...frames], ...overrides } as JsonObject;
        const job = this.#host.addJob({
          name: names[index]!,
          outputDir: this.outputDir, // The frames are the chunk's outputs, brought here from where it ran.
          script: this.#runtime.chunkScript,
          blendFile,
          passedData,
          progress: "script", // The chunk reports each frame itself: its stills' own progress would read as done.
          ...(timeout === undefined ? {} : { timeout }),
          ...(priority === undefined ? {} : { priority }),
          ...(this.#signal === undefined ? {} : { signal: this.#signal }),
        });
        chunks.push({ name: job.name, frames, job });
      });
    } catch (error) {
      for (const { job } of chunks) void job.kill().catch(() => {});
      throw error;
    }
    return chunks;
  }

  async #run(): Promise<RenderResult> {
    const followers = this.chunks.map(async ({ job }, index) => {
      for await (const fraction of job.progressUpdates()) this.#progress.update(index, fraction);
    });
    const settled = await Promise.allSettled(this.chunks.map(({ job }) => job.result()));
    await Promise.all(followers);
    const rendered: RenderedFrame[] = [];
    const failed: FailedChunk[] = [];
    const chunkResults: RenderChunkResult[] = [];
    let fps: number | null = null;
    settled.forEach((outcome, index) => {
      const { name, frames } = this.chunks[index]!;
      if (outcome.status === "rejected") {
        if (!(outcome.reason instanceof JobDroppedError)) throw outcome.reason;
        failed.push({ name, frames, error: outcome.reason });
        return;
      }
      const data = outcome.value.pythonData as unknown as { frames: { frame: number; file: string }[]; fps: number };
      // Where each frame really is: an output of the chunk (in outputDir, or where a clash sent its outputs).
      const kept = new Map(outcome.value.outputs.map((output) => [output.path, output.path]));
      for (const output of outcome.value.outputs) {
        kept.set(basename(output.path), kept.get(basename(output.path)) ?? output.path);
      }
      const located = data.frames.map(({ frame, file }) => ({
        frame,
        path: kept.get(join(this.outputDir, file)) ?? kept.get(basename(file)),
      }));
      const lost = located.filter((frame) => frame.path === undefined).map((frame) => frame.frame);
      if (lost.length > 0) {
        const summary = `frames ${
          formatFrames(lost)
        } were rendered but not kept as outputs (the job's stderr says why)`;
        failed.push({ name, frames, error: droppedBeforeBlender(name, "error", summary, outcome.value.attempts) });
        return;
      }
      rendered.push(...located.map(({ frame, path }) => ({ frame, path: path! })));
      fps ??= data.fps;
      chunkResults.push({ name, frames, attempts: outcome.value.attempts, durationMs: outcome.value.durationMs });
    });
    rendered.sort((a, b) => a.frame - b.frame);
    const details = { renderName: this.name, renderedFrames: rendered, outputDir: this.outputDir };
    if (failed.length > 0) {
      this.#progress.end();
      const failedFrames = failed.flatMap((chunk) => chunk.frames).sort((a, b) => a - b);
      throw new RenderFailedError({ ...details, stage: "frames", failedChunks: failed, failedFrames });
    }
    let video: string | null = null;
    try {
      if (this.#checked.video !== null) video = await this.#makeVideo(rendered, fps ?? 24);
    } catch (error) {
      if (!(error instanceof JobDroppedError)) throw error;
      throw new RenderFailedError({
        ...details,
        stage: "video",
        failedChunks: [],
        failedFrames: [],
        videoError: error,
      });
    } finally {
      this.#progress.end();
    }
    const durationMs = Date.now() - this.#started;
    return { name: this.name, outputDir: this.outputDir, frames: rendered, chunks: chunkResults, video, durationMs };
  }

  async #makeVideo(frames: readonly RenderedFrame[], sceneFps: number): Promise<string> {
    const video = this.#checked.video!;
    const path = video.path ?? defaultVideoPath(this.outputDir);
    const name = `${this.name}-video`;
    if (this.#killed || this.#signal?.aborted) {
      throw droppedBeforeBlender(name, "killed", "the render was killed before its video step", 0);
    }
    const fps = video.fps ?? sceneFps;
    // Where jobs do not see this host's files (a cluster), the frames travel as the job's inputs and the video comes
    // back as its output; locally the job reads and writes them in place.
    const remote = !this.#runtime.sharesFiles;
    this.#video = this.#host.addJob({
      name,
      script: this.#runtime.videoScript,
      passedData: remote
        ? {
          frames: frames.map((frame) => basename(frame.path)),
          path: basename(path),
          fps,
          codec: video.codec,
          in_job_folder: true,
        }
        : { frames: frames.map((frame) => frame.path), path, fps, codec: video.codec },
      ...(remote ? { inputs: frames.map((frame) => frame.path), outputDir: dirname(path) } : {}),
      ...(this.#checked.timeout === undefined ? {} : { timeout: this.#checked.timeout }),
      ...(this.#signal === undefined ? {} : { signal: this.#signal }),
    });
    const { outputs } = await this.#video.result();
    if (!remote) return path;
    const made = outputs.find((output) => basename(output.path) === basename(path));
    if (made === undefined) {
      throw droppedBeforeBlender(name, "error", `the video ${basename(path)} did not come back`, 1);
    }
    return made.path;
  }
}
