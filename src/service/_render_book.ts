/**
 * The renders a service started, for `GET /renders` and the dashboard's Farm view: each render as one row with its
 * frames done, its state, a grid of its frames' states (from its chunk jobs) and its last finished frame, which
 * `GET /renders/:name/frames/:n` serves from the render's folder.
 */

import { join } from "node:path";
import type { JobManager } from "../../mod.ts";
import { formatFrames } from "../render/frames.ts";
import type { ManagerEvent } from "./_events.ts";
import { HttpError } from "./_http.ts";
import { outputResponse } from "./_outputs.ts";

/** How many renders the service remembers; the oldest are forgotten past it. */
export const MAX_RENDERS = 1000;

/** The most cells a render's grid has: past it, each cell stands for several frames in a row. */
export const MAX_CELLS = 500;

/** The extensions a frame the service serves may have (those of the outputs route). */
const FRAME_EXTENSIONS = ["png", "jpg", "jpeg", "webp", "gif"];

/** A frame's image as the render job names it: `frame_0001.png`. */
const FRAME_FILE = /^frame_(\d{4,7})\.(?:png|jpe?g|webp|gif)$/;

/** Where one frame of a render is. */
export type FrameState = "queued" | "active" | "done" | "dropped";

/** A render the service started. */
export interface BookedRender {
  readonly name: string;
  /** The .blend file's name in the blends folder, and its path. */
  readonly blend: string;
  readonly blendFile: string;
  /** Its frames, sorted. */
  readonly frames: readonly number[];
  /** Its chunk jobs, in frame order. */
  readonly chunks: readonly { readonly name: string; readonly frames: readonly number[] }[];
  readonly outputDir: string;
  /** Each chunk attempt's timeout (for a chunk run again). */
  readonly timeout: number;
  readonly addedAt: Date;
}

/** One cell of a render's grid: frames `first` to `last` of its list (`count` of them), in one state. */
export interface GridCell {
  readonly first: number;
  readonly last: number;
  readonly count: number;
  /** The cell's state: of several frames, the first of dropped, active, queued, done that one of them is in. */
  readonly state: FrameState;
}

/** A render as `GET /renders` lists it. */
export interface RenderRow {
  readonly name: string;
  readonly blend: string;
  /** Its frames, written back as a frame list (`"1-48"`). */
  readonly frames: string;
  readonly frameCount: number;
  readonly framesDone: number;
  /** `active` while any of its frames is queued or rendering and some has started; `dropped` when one is lost. */
  readonly state: "queued" | "active" | "completed" | "dropped";
  readonly chunks: number;
  readonly addedAt: string;
  readonly grid: readonly GridCell[];
  /** The last finished frame whose image is in the render's folder, and where the service serves it. */
  readonly lastFrame: { readonly frame: number; readonly url: string } | null;
}

/** A page of renders, newest first. */
export interface RenderPage {
  readonly total: number;
  readonly offset: number;
  readonly limit: number;
  readonly renders: readonly RenderRow[];
}

const URGENCY: readonly FrameState[] = ["dropped", "active", "queued", "done"];

/** The service's renders, and which render each chunk job belongs to. */
export class RenderBook {
  readonly #manager: JobManager;
  readonly #renders = new Map<string, BookedRender>();
  readonly #chunks = new Map<string, { render: string; frames: readonly number[] }>();
  /** Per render: its chunk that completed last (from the event stream). */
  readonly #lastChunk = new Map<string, string>();

  constructor(manager: JobManager) {
    this.#manager = manager;
  }

  /** Remember a render; one of the same name before it is replaced. */
  add(render: BookedRender): void {
    this.#forget(render.name);
    this.#renders.set(render.name, render);
    for (const chunk of render.chunks) this.#chunks.set(chunk.name, { render: render.name, frames: chunk.frames });
    for (const oldest of [...this.#renders.keys()].slice(0, Math.max(0, this.#renders.size - MAX_RENDERS))) {
      this.#forget(oldest);
    }
  }

  /** The render `name`, if the service remembers it. */
  get(name: string): BookedRender | undefined {
    return this.#renders.get(name);
  }

  /** The render whose chunk job is `job`, and the chunk's frames. */
  chunkOf(job: string): { render: BookedRender; frames: readonly number[] } | undefined {
    const chunk = this.#chunks.get(job);
    const render = chunk === undefined ? undefined : this.#renders.get(chunk.render);
    return render === undefined ? undefined : { render, frames: chunk!.frames };
  }

  /** Follow the event stream: a chunk that completes holds its render's last finished frames. */
  apply(event: ManagerEvent): void {
    if (event.type !== "state" || event.state !== "COMPLETED") return;
    const chunk = this.#chunks.get(event.name);
    if (chunk !== undefined) this.#lastChunk.set(chunk.render, event.name);
  }

  /**
   * A page of renders, newest first.
   *
   * @param offset How many of the newest to skip.
   * @param limit How many to list at most.
   */
  async page(offset: number, limit: number): Promise<RenderPage> {
    const newest = [...this.#renders.values()].reverse();
    const renders = await Promise.all(newest.slice(offset, offset + limit).map((render) => this.#row(render)));
    return { total: newest.length, offset, limit, renders };
  }

  /**
   * The response for frame `frame` of render `name`: its image, streamed from the render's folder.
   *
   * @throws {HttpError} 404 when there is no such render or frame, the render's folder is not a folder of its own (a
   * symlink), or the frame has no image directly in it (see `outputResponse`).
   */
  async frameResponse(name: string, frame: string): Promise<Response> {
    const missing = new HttpError(404, "no such frame", `Render '${name}' has no image of frame '${frame}'`);
    const render = this.#renders.get(name);
    const number = /^\d{1,7}$/.test(frame) ? Number(frame) : NaN;
    if (render === undefined || !render.frames.includes(number)) throw missing;
    const folder = await Deno.lstat(render.outputDir).catch(() => null);
    if (folder === null || !folder.isDirectory) throw missing;
    const file = await frameFile(render.outputDir, number);
    if (file === undefined) throw missing;
    try {
      return await outputResponse(render.outputDir, file);
    } catch (error) {
      if (error instanceof HttpError) throw missing;
      throw error;
    }
  }

  #forget(name: string): void {
    const render = this.#renders.get(name);
    if (render === undefined) return;
    this.#renders.delete(name);
    this.#lastChunk.delete(name);
    for (const chunk of render.chunks) {
      if (this.#chunks.get(chunk.name)?.render === name) this.#chunks.delete(chunk.name);
    }
  }

  async #row(render: BookedRender): Promise<RenderRow> {
    const states = await this.#frameStates(render);
    const framesDone = states.filter((state) => state === "done").length;
    return {
      name: render.name,
      blend: render.blend,
      frames: formatFrames(render.frames),
      frameCount: render.frames.length,
      framesDone,
      state: renderState(states, framesDone),
      chunks: render.chunks.length,
      addedAt: render.addedAt.toISOString(),
      grid: grid(render.frames, states),
      lastFrame: await this.#lastFrame(render),
    };
  }

  /** Each frame's state, in the render's frame order, from its chunk job (or, once that job is gone, its file). */
  async #frameStates(render: BookedRender): Promise<FrameState[]> {
    const states: FrameState[] = [];
    let onDisk: Set<number> | undefined;
    for (const chunk of render.chunks) {
      const job = this.#manager.getJob(chunk.name);
      if (job === undefined) {
        // Removed from the list: a frame it left in the folder was done; one it did not was never rendered.
        onDisk ??= await framesOnDisk(render.outputDir);
        for (const frame of chunk.frames) states.push(onDisk.has(frame) ? "done" : "dropped");
        continue;
      }
      // An active chunk reports after each whole frame: that many are done, the next one renders.
      const done = job.state === "ACTIVE" ? Math.floor(job.progress * chunk.frames.length + 1e-6) : 0;
      chunk.frames.forEach((_, index) => {
        if (job.state === "COMPLETED") states.push("done");
        else if (job.state === "DROPPED") states.push("dropped");
        else if (job.state === "QUEUED") states.push("queued");
        else states.push(index < done ? "done" : index === done ? "active" : "queued");
      });
    }
    return states;
  }

  async #lastFrame(render: BookedRender): Promise<RenderRow["lastFrame"]> {
    const chunk = this.#chunks.get(this.#lastChunk.get(render.name) ?? "");
    for (const frame of [...chunk?.frames ?? []].reverse()) {
      if (await frameFile(render.outputDir, frame) !== undefined) {
        return { frame, url: `renders/${encodeURIComponent(render.name)}/frames/${frame}` };
      }
    }
    return null;
  }
}

function renderState(states: readonly FrameState[], done: number): RenderRow["state"] {
  if (states.includes("active")) return "active";
  if (states.includes("queued")) return done === 0 && !states.includes("dropped") ? "queued" : "active";
  return states.includes("dropped") ? "dropped" : "completed";
}

/** The grid: a cell per frame, or per run of frames when there are more than {@linkcode MAX_CELLS}. */
function grid(frames: readonly number[], states: readonly FrameState[]): GridCell[] {
  const size = Math.ceil(frames.length / MAX_CELLS);
  const cells: GridCell[] = [];
  for (let start = 0; start < frames.length; start += size) {
    const group = states.slice(start, start + size);
    const state = URGENCY.find((candidate) => group.includes(candidate)) ?? "queued";
    const last = Math.min(start + size, frames.length) - 1;
    cells.push({ first: frames[start]!, last: frames[last]!, count: last - start + 1, state });
  }
  return cells;
}

/**
 * The file name of frame `frame`'s image in `dir` (`frame_0001.png`: the render job names each frame so), when it is
 * a regular file there.
 */
export async function frameFile(dir: string, frame: number): Promise<string | undefined> {
  const stem = `frame_${String(frame).padStart(4, "0")}`;
  for (const extension of FRAME_EXTENSIONS) {
    const info = await Deno.lstat(join(dir, `${stem}.${extension}`)).catch(() => null);
    if (info?.isFile) return `${stem}.${extension}`;
  }
  return undefined;
}

/** The frames whose image is a regular file directly in `dir` (none when it cannot be read). */
async function framesOnDisk(dir: string): Promise<Set<number>> {
  const frames = new Set<number>();
  try {
    for await (const entry of Deno.readDir(dir)) {
      const match = FRAME_FILE.exec(entry.name);
      if (match !== null && entry.isFile && !entry.isSymlink) frames.add(Number(match[1]));
    }
  } catch {
    // Gone, or never made.
  }
  return frames;
}

/**
 * Paging from a query (`?offset=0&limit=20`).
 *
 * @throws {HttpError} 400 when either is not a whole number in range.
 */
export function paging(url: URL, defaultLimit: number, maxLimit: number): { offset: number; limit: number } {
  const read = (key: string, fallback: number, min: number, max: number) => {
    const text = url.searchParams.get(key);
    if (text === null) return fallback;
    const value = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
    if (!(value >= min && value <= max)) {
      throw new HttpError(400, "bad paging", `'${key}' must be a whole number from ${min} to ${max}: got '${text}'`);
    }
    return value;
  };
  return { offset: read("offset", 0, 0, 999_999_999), limit: read("limit", defaultLimit, 1, maxLimit) };
}
