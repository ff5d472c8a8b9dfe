/** Checks on a render's options, all made before anything is written or started. */

import { checkPriority } from "../api/checked_job.ts";
import { extname, isAbsolute, join, resolve } from "node:path";
import { readBlendFileSync } from "../blend/read.ts";
import { InvalidJobError } from "../errors.ts";
import { checkBlendFile, checkTimeout } from "../_validate.ts";
import { chunkFrames, parseFrames } from "./frames.ts";
import type { RenderOptions } from "./options.ts";

/** The FFmpeg codecs every supported Blender (3.4, 4.3, 5.2) offers. */
export const VIDEO_CODECS = [
  "AV1",
  "DNXHD",
  "DV",
  "FFV1",
  "FLASH",
  "H264",
  "HUFFYUV",
  "MPEG1",
  "MPEG2",
  "MPEG4",
  "PNG",
  "QTRLE",
  "THEORA",
  "WEBM",
] as const;

/** The video containers, by the video file's extension. */
export const VIDEO_EXTENSIONS = [".mp4", ".mkv", ".mov", ".avi", ".webm"] as const;

/**
 * The most chunk jobs one render makes: each is a job the manager keeps (a few KiB each) until the render is removed,
 * so a frame list of a million frames in chunks of 1 would take the host's memory.
 */
export const MAX_CHUNKS = 10_000;

/** The longest render name: chunk job names add to it and must stay within 128 characters. */
const MAX_RENDER_NAME = 80;
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const ENGINE = /^[A-Za-z][A-Za-z0-9_]*$/;

/** A render's options, checked and with their defaults. */
export interface CheckedRender {
  readonly blendFile: string;
  readonly frames: readonly number[];
  readonly chunks: readonly (readonly number[])[];
  /** The folder the user named, or `null` for one in the work root. */
  readonly outputDir: string | null;
  readonly overrides: {
    readonly engine: string | null;
    readonly samples: number | null;
    readonly resolution: readonly [number, number] | null;
    readonly camera: string | null;
    readonly scene: string | null;
  };
  readonly video: { readonly path: string | null; readonly fps: number | null; readonly codec: string } | null;
  readonly timeout: number | undefined;
  readonly priority: number | undefined;
}

function fail(field: string, message: string, given?: unknown): never {
  const value = given === undefined ? "" : `: current value is ${JSON.stringify(given) ?? String(given)}`;
  throw new InvalidJobError(field, `Cannot render as '${field}' ${message}${value}`);
}

function integer(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    fail(field, `must be a whole number from ${min} to ${max}`, value);
  }
  return value;
}

function text(field: string, value: unknown): string {
  if (typeof value !== "string" || value.trim() === "") fail(field, "must be a non-empty string", value);
  return value;
}

/** Check a render's name (used in its chunk job names). */
export function checkRenderName(value: unknown): string {
  if (typeof value !== "string" || value.length > MAX_RENDER_NAME || !NAME.test(value) || value.includes("..")) {
    fail(
      "name",
      `must be 1 to ${MAX_RENDER_NAME} letters, digits, '_', '-' or '.', not starting with '.' or '-'`,
      value,
    );
  }
  return value;
}

/**
 * Check every option of a render; read the .blend file's IDs when a scene or camera is named.
 *
 * @throws {InvalidJobError} Naming the option that is wrong.
 */
export function checkRender(options: RenderOptions): CheckedRender {
  if (typeof options !== "object" || options === null) {
    throw new InvalidJobError("options", "Cannot render as its options must be an object");
  }
  const blendFile = checkBlendFile(options.blendFile);
  const frames = parseFrames(options.frames);
  const chunk = options.chunk === undefined ? 10 : integer("chunk", options.chunk, 1, 1_048_575);
  const chunkCount = Math.ceil(frames.length / chunk);
  if (chunkCount > MAX_CHUNKS) {
    fail(
      "chunk",
      `would make ${chunkCount.toLocaleString("en")} chunk jobs for ${frames.length.toLocaleString("en")} frames; ` +
        `a render has at most ${MAX_CHUNKS.toLocaleString("en")}, so chunk must be at least ` +
        `${Math.ceil(frames.length / MAX_CHUNKS)}`,
      chunk,
    );
  }
  const outputDir = options.outputDir === undefined ? null : resolve(text("outputDir", options.outputDir));
  if (outputDir !== null) checkFolder(outputDir);
  const engine = options.engine === undefined ? null : text("engine", options.engine);
  if (engine !== null && !ENGINE.test(engine)) {
    fail("engine", "must be CYCLES, EEVEE, WORKBENCH or a render engine's identifier", engine);
  }
  const samples = options.samples === undefined ? null : integer("samples", options.samples, 1, 16_777_216);
  let resolution: readonly [number, number] | null = null;
  if (options.resolution !== undefined) {
    const given = options.resolution as unknown;
    if (!Array.isArray(given) || given.length !== 2) fail("resolution", "must be [width, height]", given);
    resolution = [integer("resolution", given[0], 4, 65536), integer("resolution", given[1], 4, 65536)];
  }
  const camera = options.camera === undefined ? null : text("camera", options.camera);
  const scene = options.scene === undefined ? null : text("scene", options.scene);
  if (camera !== null || scene !== null) checkNames(blendFile, camera, scene);
  return {
    blendFile,
    frames,
    chunks: chunkFrames(frames, chunk),
    outputDir,
    overrides: { engine, samples, resolution, camera, scene },
    video: checkVideo(options.video),
    timeout: options.timeout === undefined ? undefined : checkTimeout(options.timeout),
    priority: options.priority === undefined ? undefined : checkPriority(options.priority, "Cannot render"),
  };
}

function checkFolder(path: string): void {
  try {
    if (!Deno.statSync(path).isDirectory) fail("outputDir", `${path} is not a folder`);
  } catch (error) {
    if (error instanceof InvalidJobError) throw error;
    if (!(error instanceof Deno.errors.NotFound)) fail("outputDir", `${path} cannot be read (${error})`);
  }
}

/** The scene and camera object must be in the file (that the camera is a camera, Blender checks). */
function checkNames(blendFile: string, camera: string | null, scene: string | null): void {
  const ids = readBlendFileSync(blendFile).ids;
  const names = (code: string) => ids.filter((id) => id.code === code).map((id) => id.name);
  if (scene !== null && !names("SC").includes(scene)) {
    fail("scene", `names no scene of ${blendFile} (it has ${names("SC").map((n) => `'${n}'`).join(", ")})`, scene);
  }
  if (camera !== null && !names("OB").includes(camera)) fail("camera", `names no object of ${blendFile}`, camera);
}

function checkVideo(video: RenderOptions["video"]): CheckedRender["video"] {
  if (video === undefined || video === false) return null;
  if (video === true) return { path: null, fps: null, codec: "H264" };
  if (typeof video !== "object" || video === null) fail("video", "must be true or { path?, fps?, codec? }", video);
  let path: string | null = null;
  if (video.path !== undefined) {
    path = text("video.path", video.path);
    const extension = extname(path).toLowerCase();
    if (!(VIDEO_EXTENSIONS as readonly string[]).includes(extension)) {
      fail("video.path", `must end in ${VIDEO_EXTENSIONS.join(", ")} (the container follows it)`, path);
    }
    path = isAbsolute(path) ? path : resolve(path);
  }
  const fps = video.fps === undefined ? null : video.fps;
  if (fps !== null && (typeof fps !== "number" || !(fps > 0 && fps <= 1000))) {
    fail("video.fps", "must be a number above 0, at most 1000", fps);
  }
  const codec = video.codec === undefined ? "H264" : text("video.codec", video.codec).toUpperCase();
  if (!(VIDEO_CODECS as readonly string[]).includes(codec)) {
    fail("video.codec", `must be one of ${VIDEO_CODECS.join(", ")}`, video.codec);
  }
  return { path, fps, codec };
}

/** The default video file of a render whose frames are in `outputDir`. */
export function defaultVideoPath(outputDir: string): string {
  return join(outputDir, "video.mp4");
}
