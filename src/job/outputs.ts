/**
 * A job's outputs: the files it wrote into its folder (where its working copy of the .blend file lives, so
 * Blender's `//renders/` lands there) and the files Blender said it saved (`Saved: '…'`), kept when the job
 * completes: moved into the job's `outputDir`, or into the manager's results folder, before the job folder goes.
 */

import { copyFile, lstat, mkdir, readdir, rename, rm } from "node:fs/promises";
import { dirname, extname, isAbsolute, join, sep } from "node:path";
import { JOB_FILES } from "./dir.ts";

/**
 * The kinds of output file, by extension: `image` (`.png`, `.jpg`, `.exr`, ...), `video` (`.mp4`, `.mkv`, ...),
 * `blend`, or `other`.
 *
 * @example
 * ```ts ignore
 * import type { OutputKind } from "@bgproc/blender";
 *
 * const kind: OutputKind = "image";
 * ```
 */
export type OutputKind = "image" | "video" | "blend" | "other";

/**
 * One file a job wrote, as `result.outputs` lists it.
 *
 * @example The images a render job wrote
 * ```ts ignore
 * import { JobManager } from "@bgproc/blender";
 *
 * await using manager = new JobManager({ outputDir: "./out" });
 * const { outputs } = await manager.addJob({ script: "./render.py", blendFile: "./shot.blend" }).result();
 * for (const { path, bytes } of outputs.filter((output) => output.kind === "image")) console.log(path, bytes);
 * ```
 */
export interface JobOutput {
  /** Where the file is now (absolute). */
  readonly path: string;
  /** Its size in bytes. */
  readonly bytes: number;
  /** What it is, from its extension. */
  readonly kind: OutputKind;
}

/** The most files of a job folder kept as outputs; the rest stay and go with the folder (the report says so). */
export const MAX_OUTPUTS = 10_000;

/** How deep folders in a job folder are searched. */
const MAX_DEPTH = 32;

const KINDS: Readonly<Record<string, OutputKind>> = Object.fromEntries([
  ...["png", "jpg", "jpeg", "exr", "tif", "tiff", "bmp", "tga", "hdr", "webp", "jp2", "j2c", "cin", "dpx", "rgb"]
    .map((ext) => [ext, "image"]),
  ...["mp4", "mkv", "mov", "avi", "webm", "ogv", "ogg", "flv", "mpg", "mpeg", "m4v", "dv"].map((ext) => [ext, "video"]),
  ["blend", "blend"],
]);

/** The kind of the file at `path`, from its extension. */
export function outputKind(path: string): OutputKind {
  return KINDS[extname(path).slice(1).toLowerCase()] ?? "other";
}

/** The path in a line where Blender says it saved a file (`Saved: '/x/frame_0001.png'`; 5.x: `render | Saved: …`). */
export function savedPath(line: string): string | null {
  const match = /(?:^|\| )Saved: '(.+)'\s*$/.exec(line);
  return match === null || !isAbsolute(match[1]!) ? null : match[1]!;
}

/** The job folder's own files, which are never outputs (its private .blend copy and Blender's backup of it too). */
const RUNTIME_FILES = new Set<string>([...Object.values(JOB_FILES), `${JOB_FILES.work}1`]);

/** What {@linkcode keepOutputs} kept, and what it had to leave. */
export interface KeptOutputs {
  readonly outputs: JobOutput[];
  /** A note for the job's report when files were left (over {@linkcode MAX_OUTPUTS}), else `undefined`. */
  readonly note?: string;
}

/**
 * Move every output file of `jobDir` into `into` (relative paths kept, files of the same name replaced) and list
 * them, then the files of `saved` (Blender's `Saved:` lines) outside the job folder, which stay where they are.
 * Links, FIFOs and other non-files are never followed or moved.
 */
export async function keepOutputs(jobDir: string, into: string, saved: readonly string[]): Promise<KeptOutputs> {
  const found: string[] = [];
  const full = await walk(jobDir, "", 0, found);
  const outputs: JobOutput[] = [];
  for (const path of found) {
    const target = join(into, path);
    await mkdir(dirname(target), { recursive: true });
    await move(join(jobDir, path), target);
    outputs.push({ path: target, bytes: (await lstat(target)).size, kind: outputKind(target) });
  }
  const listed = new Set(outputs.map((output) => output.path));
  for (const path of new Set(saved)) {
    if (path === jobDir || path.startsWith(jobDir + sep) || listed.has(path)) continue;
    const info = await lstat(path).catch(() => null);
    if (info?.isFile()) outputs.push({ path, bytes: info.size, kind: outputKind(path) });
  }
  const note = full
    ? undefined
    : `bgproc: the job wrote more than ${MAX_OUTPUTS} files; the first ${MAX_OUTPUTS} were kept as outputs`;
  return note === undefined ? { outputs } : { outputs, note };
}

/** Collect the output files under `jobDir/sub` into `found` (relative paths); `false` when it stopped at the cap. */
async function walk(jobDir: string, sub: string, depth: number, found: string[]): Promise<boolean> {
  if (depth > MAX_DEPTH) return true;
  const entries = await readdir(join(jobDir, sub), { withFileTypes: true }).catch(() => []);
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const entry of entries) {
    const path = sub === "" ? entry.name : join(sub, entry.name);
    if (sub === "" && (RUNTIME_FILES.has(entry.name) || entry.name.endsWith(".tmp"))) continue;
    if (entry.isDirectory()) {
      if (!await walk(jobDir, path, depth + 1, found)) return false;
    } else if (entry.isFile()) {
      if (found.length >= MAX_OUTPUTS) return false;
      found.push(path);
    }
  }
  return true;
}

/** Rename, or copy and remove when `to` is on another file system. */
async function move(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as { code?: string }).code !== "EXDEV") throw error;
    await copyFile(from, to);
    await rm(from, { force: true });
  }
}
