/**
 * A job's outputs: the files it wrote into its folder (where its working copy of the .blend file lives, so
 * Blender's `//renders/` lands there) and the files Blender said it saved (`Saved: '…'`), kept when the job
 * completes: moved into the job's `outputDir`, or into the manager's results folder, before the job folder goes.
 */

import { constants } from "node:fs";
import { copyFile, lstat, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, extname, isAbsolute, join, sep } from "node:path";
import { changedDir, type DirIdentity, type InputStamp, JOB_FILES } from "./dir.ts";

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
  /** Lines for the job's log when files were left or kept elsewhere than asked, else `undefined`. */
  readonly note?: string;
  /** The folder the outputs went to instead of `into` (`fallback`), when they clashed with what `into` holds. */
  readonly intoFallback: boolean;
}

/** Where {@linkcode keepOutputs} puts a job's files. */
export interface OutputTargets {
  /** The folder asked for (the job's `outputDir`, or the manager's results folder for this job). */
  readonly into: string;
  /**
   * Where the files go instead when one would clash with `into` (a file where a folder is needed, or a folder
   * where a file goes): none is moved into `into` then, so no job is ever half-moved. `null`: `into` is private.
   */
  readonly fallback: string | null;
}

/** A file found in the job folder. */
interface Found {
  /** Relative to the job folder. */
  readonly path: string;
  /** Its hard-link count: more than 1 means another name (maybe outside the folder) shares it. */
  readonly links: number;
}

/**
 * Move every output file of `jobDir` into `targets.into` (relative paths kept, files of the same name replaced) and
 * list them, then the files of `saved` (Blender's `Saved:` lines) already in that folder (a render written straight
 * into `outputDir`); a saved file anywhere else is never listed.
 * Links, FIFOs and other non-files are never followed or moved; a file with other hard links is copied (the other
 * names keep their inode); a file that cannot be moved is left with a note, and the others are still kept.
 *
 * @throws {Error} When `identity` is given and the job folder is no longer that folder (nothing is moved).
 */
export async function keepOutputs(
  jobDir: string,
  targets: OutputTargets,
  saved: readonly string[],
  identity?: DirIdentity,
): Promise<KeptOutputs> {
  const found: Found[] = [];
  const notes: string[] = [];
  if (!await walk(jobDir, "", 0, found, notes, identity?.inputs)) {
    notes.push(`bgproc: the job wrote more than ${MAX_OUTPUTS} files; the first ${MAX_OUTPUTS} were kept as outputs`);
  }
  const swapped = identity === undefined ? null : await changedDir(jobDir, identity);
  if (swapped !== null) throw new Error(swapped);
  let into = targets.into;
  let intoFallback = false;
  const clash = targets.fallback === null ? null : await firstClash(into, found);
  if (clash !== null) {
    notes.push(`bgproc: ${clash}; this job's outputs were kept in ${targets.fallback} instead, none in ${into}`);
    into = targets.fallback!;
    intoFallback = true;
  }
  const outputs: JobOutput[] = [];
  for (const file of found) {
    const target = join(into, file.path);
    try {
      await mkdir(dirname(target), { recursive: true });
      await move(join(jobDir, file.path), target, file.links > 1);
      outputs.push({ path: target, bytes: (await lstat(target)).size, kind: outputKind(target) });
    } catch (error) {
      notes.push(`bgproc: the output ${JSON.stringify(file.path)} could not be kept: ${(error as Error).message}`);
    }
  }
  const listed = new Set(outputs.map((output) => output.path));
  for (const path of new Set(saved)) {
    // Only files in the folder the outputs went to: a `Saved:` line is the job's own words, and a job could print one
    // naming any file on the machine.
    if (!path.startsWith(into + sep) || listed.has(path)) continue;
    const info = await lstat(path).catch(() => null);
    if (info?.isFile()) outputs.push({ path, bytes: info.size, kind: outputKind(path) });
  }
  const note = notes.length === 0 ? undefined : notes.join("\n");
  return note === undefined ? { outputs, intoFallback } : { outputs, note, intoFallback };
}

/**
 * The first of the job's files that cannot go into `into` as it is now: a folder on its way that is a file there,
 * or a folder where the file goes. `null` when every file fits (same-named files are replaced).
 */
async function firstClash(into: string, found: readonly Found[]): Promise<string | null> {
  const folders = new Map<string, boolean>();
  const isFolderOrAbsent = async (path: string) => {
    let ok = folders.get(path);
    if (ok === undefined) {
      ok = await stat(path).then((info) => info.isDirectory(), () => true);
      folders.set(path, ok);
    }
    return ok;
  };
  for (const file of found) {
    const parts = file.path.split(sep);
    for (let depth = 1; depth < parts.length; depth++) {
      const folder = join(into, ...parts.slice(0, depth));
      if (!await isFolderOrAbsent(folder)) return `${folder} is a file, where the job's ${file.path} needs a folder`;
    }
    const target = join(into, file.path);
    if ((await lstat(target).catch(() => null))?.isDirectory()) {
      return `${target} is a folder, where the job wrote a file`;
    }
  }
  return null;
}

/**
 * Collect the output files under `jobDir/sub` into `found`; what is left for being too deep or unnamable is said in
 * `notes`. Returns `false` when it stopped at {@linkcode MAX_OUTPUTS}.
 */
async function walk(
  jobDir: string,
  sub: string,
  depth: number,
  found: Found[],
  notes: string[],
  inputs?: ReadonlyMap<string, InputStamp>,
): Promise<boolean> {
  const entries = await readdir(join(jobDir, sub), { withFileTypes: true }).catch(() => []);
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const entry of entries) {
    const path = sub === "" ? entry.name : join(sub, entry.name);
    if (sub === "" && (RUNTIME_FILES.has(entry.name) || entry.name.endsWith(".tmp"))) continue;
    if (entry.isDirectory()) {
      if (depth + 1 > MAX_DEPTH) {
        notes.push(`bgproc: ${JSON.stringify(path)} is more than ${MAX_DEPTH} folders deep; nothing in it was kept`);
      } else if (!await walk(jobDir, path, depth + 1, found, notes, inputs)) {
        return false;
      }
    } else if (entry.isFile()) {
      if (found.length >= MAX_OUTPUTS) return false;
      const info = await lstat(join(jobDir, path)).catch(() => null);
      if (info === null) {
        // The name is not UTF-8 (Deno reads it with replacement characters), so no path reaches the file.
        notes.push(`bgproc: the output ${JSON.stringify(path)} has a name that is not UTF-8 and was left`);
      } else if (info.isFile() && !(sub === "" && unchanged(inputs?.get(entry.name), info))) {
        found.push({ path, links: info.nlink });
      }
    }
  }
  return true;
}

/** Rename (or copy, when `copy` or across file systems) `from` to `to`, removing `from`. */
async function move(from: string, to: string, copy: boolean): Promise<void> {
  if (!copy) {
    try {
      return await rename(from, to);
    } catch (error) {
      if ((error as { code?: string }).code !== "EXDEV") throw error;
    }
  }
  // A copy is a new inode: a hard link to a file outside the job folder leaves that file as it was.
  await rm(to, { force: true });
  await copyFile(from, to, constants.COPYFILE_EXCL);
  await rm(from, { force: true });
}

/** Whether a file is the input `stamp` describes, as it was copied in (the job did not write it). */
function unchanged(
  stamp: InputStamp | undefined,
  info: { ino: number | null; size: number; mtimeMs: number },
): boolean {
  return stamp !== undefined && stamp.ino === (info.ino ?? 0) && stamp.size === info.size &&
    stamp.mtimeMs === Math.floor(info.mtimeMs);
}
