/**
 * Renders from the service: `.blend` files directly inside its `blendsDir` (regular files, not symlinks), rendered
 * in chunk jobs (`manager.render`) into `outputsDir/<render name>/`. The chunk jobs are ordinary jobs on the event
 * stream and in the dashboard's list; the service remembers each render in its {@linkcode RenderBook}, so that a
 * dropped chunk can run again (`POST /jobs/:name/retry`).
 */

import { existsSync } from "node:fs";
import { join } from "node:path";
import type { JobManager } from "../../mod.ts";
import { chunkFrames, parseFrames } from "../render/frames.ts";
import { checkRenderName } from "../render/_check.ts";
import { didYouMean } from "../_suggest.ts";
import { HttpError } from "./_http.ts";
import type { RenderBook } from "./_render_book.ts";

const BLEND_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.blend$/;

/** The fields of `POST /renders`. */
export const RENDER_FIELDS: readonly string[] = ["blend", "frames", "chunk", "name"];

/** The names of the `.blend` files in `dir`, sorted. */
export async function listBlends(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && !entry.isSymlink && BLEND_NAME.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

/**
 * The path of the `.blend` file `name` in `dir`.
 *
 * @throws {HttpError} 400 when `name` is not a regular `.blend` file directly in `dir`.
 */
async function resolveBlend(dir: string, name: unknown): Promise<string> {
  const refuse = (detail: string) => new HttpError(400, "bad render", detail);
  if (typeof name !== "string" || !BLEND_NAME.test(name)) {
    throw refuse("'blend' must be the file name of a .blend file in the service's blends folder");
  }
  const path = join(dir, name);
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch {
    throw refuse(`There is no .blend file '${name}'`);
  }
  if (!info.isFile) throw refuse(`'${name}' is not a regular file`);
  return path;
}

/** What `startRender` needs of the service. */
export interface RenderService {
  readonly manager: JobManager;
  readonly blendsDir: string;
  readonly outputsDir: string;
  readonly maxQueued: number;
  readonly timeout: number;
  /** Where the service remembers its renders. */
  readonly book: RenderBook;
}

/** What `POST /renders` answers: the render's name, its chunk jobs, its frame count and its folder. */
export interface StartedRender {
  readonly name: string;
  readonly jobs: readonly string[];
  readonly frames: number;
  readonly outputs: string;
}

/**
 * Check a `POST /renders` body and start the render.
 *
 * @throws {HttpError} 400 for a bad body, 429 when its chunks would pass `maxQueued`.
 */
export async function startRender(service: RenderService, body: unknown): Promise<StartedRender> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, "bad render", "The body must be a JSON object");
  }
  const fields = body as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!RENDER_FIELDS.includes(key)) {
      throw new HttpError(400, "bad render", `Unknown field '${key}'${didYouMean(key, RENDER_FIELDS)}`);
    }
  }
  const { frames, chunk = 10, name } = fields;
  if (typeof frames !== "string") throw new HttpError(400, "bad render", "'frames' must be a string like \"1-48\"");
  if (typeof chunk !== "number" || !Number.isInteger(chunk) || chunk < 1) {
    throw new HttpError(400, "bad render", "'chunk' must be a whole number of frames >= 1");
  }
  if (name !== undefined && typeof name !== "string") throw new HttpError(400, "bad render", "'name' must be a string");
  const blendFile = await resolveBlend(service.blendsDir, fields.blend);
  const chunks = chunkFrames(parseFrames(frames), chunk).length; // A bad FRAMES throws InvalidJobError: 400.
  const { manager } = service;
  if (manager.counts.queued + chunks > service.maxQueued) {
    throw new HttpError(
      429,
      "queue full",
      `The render's ${chunks} chunk jobs would pass the ${service.maxQueued} jobs that may wait; try again later`,
      { "retry-after": "5" },
    );
  }
  // Checked before it names a folder: no name can leave outputsDir (InvalidJobError: 400).
  const renderName = name === undefined ? freeName(service.outputsDir) : checkRenderName(name);
  const render = manager.render({
    blendFile,
    frames,
    chunk,
    name: renderName,
    outputDir: join(service.outputsDir, renderName),
    timeout: service.timeout,
  });
  render.result().catch(() => {}); // Its chunk jobs report how it went; a failed render is no unhandled rejection.
  service.book.add({
    name: render.name,
    blend: fields.blend as string,
    blendFile,
    frames: render.frames,
    chunks: render.chunks.map(({ name, frames }) => ({ name, frames })),
    outputDir: render.outputDir,
    timeout: service.timeout,
    addedAt: new Date(),
  });
  return {
    name: render.name,
    jobs: render.chunks.map((chunk) => chunk.name),
    frames: render.chunks.reduce((sum, chunk) => sum + chunk.frames.length, 0),
    outputs: `${render.name}/`,
  };
}

/**
 * Run a dropped or completed chunk job of one of the service's renders again: the same frames of the same .blend
 * file into the same folder, under the same job name (`manager.render` names a chunk by its render and frames).
 *
 * @param service The service's render settings.
 * @param name The chunk job's name.
 * @returns Whether `name` is such a chunk (`false`: the caller says it cannot be retried).
 * @throws {HttpError} 429 when the queue is full.
 * @throws {InvalidJobError} When the .blend file is gone or the folder cannot be made (400).
 */
export function retryChunk(service: RenderService, name: string): boolean {
  const chunk = service.book.chunkOf(name);
  if (chunk === undefined) return false;
  const { manager } = service;
  if (manager.counts.queued >= service.maxQueued) {
    throw new HttpError(429, "queue full", `${service.maxQueued} jobs are already waiting; try again later`, {
      "retry-after": "5",
    });
  }
  const { render, frames } = chunk;
  const again = manager.render({
    blendFile: render.blendFile,
    frames,
    chunk: frames.length,
    name: render.name,
    outputDir: render.outputDir,
    timeout: render.timeout,
  });
  again.result().catch(() => {});
  return true;
}

/** `render-1`, `render-2`, ...: the first whose folder does not exist yet. */
function freeName(outputsDir: string): string {
  for (let n = 1;; n++) if (!existsSync(join(outputsDir, `render-${n}`))) return `render-${n}`;
}
