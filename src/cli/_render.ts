/** `bgproc render FILE.blend`: frames of a .blend file in chunk jobs, one progress bar, every frame's file. */

// deno-lint-ignore-file no-console
import { basename, join } from "node:path";
import type { Job } from "../api/job.ts";
import { RenderFailedError } from "../render/errors.ts";
import type { Render, RenderOptions, RenderResult, RenderVideoOptions } from "../render/render.ts";
import type { LogLine } from "../types.ts";
import { type Flags, positiveNumber } from "./_args.ts";
import type { Command } from "./_command.ts";
import { ExitCode, UsageError } from "./_errors.ts";
import { watch } from "./_jobs.ts";
import { CLUSTER_FLAGS, MANAGER_FLAGS, openManager, OUTPUT_FLAGS } from "./_manager_flags.ts";
import { userPath } from "./_paths.ts";

/** The render's options from the command line. */
function renderOptions(blend: string, flags: Flags): RenderOptions {
  if (typeof flags.frames !== "string") throw new UsageError("render needs --frames (e.g. --frames 1-48)");
  if (typeof flags.output !== "string") throw new UsageError("render needs --output DIR, the folder for the frames");
  const chunk = positiveNumber(flags, "chunk", true);
  const samples = positiveNumber(flags, "samples", true);
  const timeout = positiveNumber(flags, "timeout", false);
  let resolution: [number, number] | undefined;
  if (typeof flags.resolution === "string") {
    const match = /^(\d+)x(\d+)$/i.exec(flags.resolution.trim());
    if (match === null) {
      throw new UsageError(`--resolution takes WIDTHxHEIGHT, e.g. 1920x1080, not '${flags.resolution}'`);
    }
    resolution = [Number(match[1]), Number(match[2])];
  }
  const video: RenderVideoOptions = {
    ...(typeof flags["video-file"] === "string" ? { path: userPath(flags["video-file"]) } : {}),
    ...(typeof flags.codec === "string" ? { codec: flags.codec } : {}),
  };
  const fps = positiveNumber(flags, "fps", false);
  if (fps !== undefined) video.fps = fps;
  const wantsVideo = flags.video === true || Object.keys(video).length > 0;
  return {
    blendFile: userPath(blend),
    frames: flags.frames,
    outputDir: userPath(flags.output),
    ...(chunk === undefined ? {} : { chunk }),
    ...(samples === undefined ? {} : { samples }),
    ...(timeout === undefined ? {} : { timeout: timeout * 1000 }),
    ...(resolution === undefined ? {} : { resolution }),
    ...(typeof flags.engine === "string" ? { engine: flags.engine } : {}),
    ...(typeof flags.camera === "string" ? { camera: flags.camera } : {}),
    ...(typeof flags.scene === "string" ? { scene: flags.scene } : {}),
    ...(wantsVideo ? { video } : {}),
  };
}

/** Every chunk's output lines, prefixed by the chunk's name, as they come. */
async function* chunkLogs(render: Render): AsyncGenerator<LogLine> {
  const queue: LogLine[] = [];
  let wake: (() => void) | undefined;
  let open = render.chunks.length;
  for (const { name, job } of render.chunks) {
    void (async () => {
      for await (const line of job.logs()) {
        queue.push({ ...line, line: `${name} | ${line.line}` });
        wake?.();
      }
      open--;
      wake?.();
    })();
  }
  while (true) {
    const line = queue.shift();
    if (line !== undefined) yield line;
    else if (open === 0) return;
    else await new Promise<void>((resolve) => wake = resolve);
  }
}

/** The render as one job for the display: one bar, its state, its outcome. */
function asJob(render: Render, label: string): Job {
  const state = () => {
    if (render.ended) return render.chunks.every((chunk) => chunk.job.state === "COMPLETED") ? "COMPLETED" : "DROPPED";
    return render.chunks.some((chunk) => chunk.job.state !== "QUEUED") ? "ACTIVE" : "QUEUED";
  };
  const view = {
    name: label,
    get state() {
      return state();
    },
    get progress() {
      return render.progress.fraction;
    },
    get attempts() {
      return state() === "QUEUED" ? 0 : 1;
    },
    get note() {
      return `${render.progress.framesDone}/${render.progress.frameCount} frames`;
    },
    async *progressUpdates() {
      for await (const progress of render.progressUpdates()) yield progress.fraction;
    },
    result: () => render.result(),
    logs: () => chunkLogs(render),
    kill: () => render.kill(),
  };
  return view as unknown as Job;
}

/** The `render` command. */
export const renderCommand: Command = {
  name: "render",
  summary: "render frames of a .blend file in parallel chunk jobs, with one progress bar",
  usage: "bgproc render FILE.blend --frames FRAMES --output DIR [options]",
  notes: `FRAMES: comma-separated N, A-B or A-BxSTEP (every STEP-th frame from A to B), e.g. 1-48 or 1-10,20,30-40x2.
Frames are written to DIR as frame_#### plus the scene's image extension; a chunk that fails is retried up to
--attempts times. Ends with the count and folder of the frames; lists each frame's file (and the video's) on
stdout when it is not a terminal, or the result as JSON with --json.

Exit status: 0 rendered, 1 a chunk (or the video) failed: the other frames are kept, 2 bad usage, 3 no Blender,
130 interrupted.`,
  flags: {
    frames: { type: "string", value: "FRAMES", help: "the frames to render, e.g. 1-48" },
    output: { type: "string", value: "DIR", help: "the folder the frames are written to (made when missing)" },
    chunk: { type: "string", value: "N", help: "frames per chunk job (default: 10)" },
    engine: { type: "string", value: "NAME", help: "CYCLES, EEVEE, WORKBENCH or an engine id (default: the scene's)" },
    samples: { type: "string", value: "N", help: "samples per pixel, Cycles and EEVEE (default: the scene's)" },
    resolution: { type: "string", value: "WxH", help: "width x height in pixels, at 100 % (default: the scene's)" },
    camera: { type: "string", value: "NAME", help: "the camera object to render with (default: the scene's)" },
    scene: { type: "string", value: "NAME", help: "the scene to render (default: the file's active scene)" },
    video: { type: "boolean", help: "then make DIR/video.mp4 of the frames with Blender's sequencer (FFmpeg)" },
    "video-file": { type: "string", value: "FILE", help: "make the video here (.mp4, .mkv, .mov, .avi, .webm)" },
    fps: { type: "string", value: "N", help: "the video's frames per second (default: the scene's)" },
    codec: { type: "string", value: "NAME", help: "the video's codec, as Blender names it (default: H264)" },
    timeout: { type: "string", value: "S", help: "kill a chunk's attempt after S seconds (default: none)" },
    ...MANAGER_FLAGS,
    ...CLUSTER_FLAGS,
    ...OUTPUT_FLAGS,
  },
  async run({ flags, positionals, rest }) {
    if (positionals.length !== 1 || rest.length > 0) {
      throw new UsageError(
        positionals.length === 0 ? "render needs a .blend FILE" : "render takes one .blend FILE and no other arguments",
      );
    }
    const options = renderOptions(positionals[0]!, flags);
    await using manager = await openManager(flags);
    const render = manager.render(options);
    const { interrupted } = await watch(
      manager,
      [asJob(render, `${basename(options.blendFile)} ${flags.frames}`)],
      flags,
    );
    try {
      const result = await render.result();
      if (flags.json) console.log(JSON.stringify(result));
      else printFrames(result);
      return ExitCode.ok;
    } catch (error) {
      if (!(error instanceof RenderFailedError)) throw error;
      if (!interrupted) {
        console.error(error.message);
        for (const chunk of error.failedChunks) if (chunk.error.reason !== "killed") console.error(chunk.error.report);
        if (error.videoError !== undefined) console.error(error.videoError.report);
      }
      if (flags.json) {
        const { renderName: name, stage, failedFrames, renderedFrames, outputDir } = error;
        console.log(JSON.stringify({ name, state: "FAILED", stage, failedFrames, frames: renderedFrames, outputDir }));
      }
      return interrupted ? ExitCode.interrupted : ExitCode.dropped;
    }
  },
};

/**
 * Where the frames went: `48 frames in /abs/out/ (frame_0001.png … frame_0048.png)` and the video on stderr; the
 * files, one a line, on stdout when it is not a terminal (for a pipe or a file).
 */
function printFrames(result: RenderResult): void {
  const names = result.frames.map((frame) => basename(frame.path));
  const range = names.length === 0 ? "" : names.length === 1 ? ` (${names[0]})` : ` (${names[0]} … ${names.at(-1)})`;
  console.error(`${names.length} frame${names.length === 1 ? "" : "s"} in ${join(result.outputDir, "/")}${range}`);
  if (result.video !== null) console.error(`video: ${result.video}`);
  if (Deno.stdout.isTerminal()) return;
  for (const path of [...result.frames.map((frame) => frame.path), ...(result.video === null ? [] : [result.video])]) {
    console.log(path);
  }
}
