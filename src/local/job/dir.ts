/**
 * The job directory, Deno's side of the contract with the Python runtime
 * (whose `JobDir` in `python/bgproc/_job_dir.py` is the other side): the
 * file names, the atomic write of `spec.json`, and reads of what Blender
 * wrote that nothing a job does can turn into a hang or a flood.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { basename, join } from "node:path";

/** The files of a job directory. */
export const JOB_FILES = {
  /** The versioned job spec, written by Deno. */
  spec: "spec.json",
  /** Written by the runtime as soon as Blender reaches it. */
  runtime: "runtime.json",
  /** The latest progress, a float 0..1. */
  progress: "progress",
  /** `python_data` and the data-block manifest. */
  result: "result.json",
  /** The exception, when the script or the runtime raised. */
  error: "error.json",
  /** The job's private copy of its .blend file. */
  work: "work.blend",
  /** The data-block library the script returned. */
  dataBlocks: "data_blocks.blend",
  /** A fork-mode child's own temp folder (`bpy.app.tempdir`, `tempfile`): never an output. */
  temp: ".bgproc-temp",
} as const;

/** The most characters of a job's name kept, sanitized, in its directory's name. */
const DIR_PREFIX_LENGTH = 40;

/**
 * The name of a job's directory under the jobs root, derived from the job's name, never the name itself: the
 * submission's serial number (unique per manager, so a reused name never shares a directory), the name sanitized
 * to ASCII letters, digits, `.`, `_` and `-` (accents dropped, anything else `_`, at most 40 characters), and the
 * first 12 hex digits of the SHA-256 of the full name (two names that sanitize alike still differ). It is at most
 * about 70 bytes, never starts with `.`, and holds nothing a shell, a URL or a file system treats specially:
 * `jobDirName(3, "test1.py_Würfel")` is `"3-test1.py_Wurfel-…"`, `jobDirName(4, "レンダー 010")` is `"4-010-…"`.
 *
 * @example A job directory for a name from the add-on's UI
 * ```ts
 * import { jobDirName } from "./dir.ts";
 *
 * console.log(jobDirName(1, "test1.py_Square Object")); // 1-test1.py_Square_Object-<12 hex digits>
 * ```
 */
export function jobDirName(serial: number, name: string): string {
  const hash = createHash("sha256").update(name, "utf8").digest("hex").slice(0, 12);
  const prefix = name.normalize("NFKD").replace(/\p{M}/gu, "").replace(/[^A-Za-z0-9._-]+/g, "_")
    .slice(0, DIR_PREFIX_LENGTH).replace(/^[._-]+|[._-]+$/g, "");
  return prefix === "" ? `${serial}-${hash}` : `${serial}-${prefix}-${hash}`;
}

/** The most bytes read from a `progress` file: a float needs far fewer. */
const PROGRESS_READ_LIMIT = 64;

/** Raised when a file the job wrote is larger than the host agreed to read. */
export class FileTooLargeError extends Error {
  /** The file's size in bytes. */
  readonly size: number;
  /** The limit it broke. */
  readonly limit: number;
  constructor(path: string, size: number, limit: number) {
    super(`${path} is ${size} bytes, more than the limit of ${limit}`);
    this.name = "FileTooLargeError";
    this.size = size;
    this.limit = limit;
  }
}

/** Which folder a job directory is (device and inode), to tell when a job swapped it for another or a link. */
export interface DirIdentity {
  readonly dev: number;
  readonly ino: number;
  /** The inputs copied in, by name, as they were then. */
  readonly inputs?: ReadonlyMap<string, InputStamp>;
}

/**
 * Make `jobDir` ready for an attempt: empty but for `spec.json`, written atomically for each attempt (the runtime
 * removes it as the script starts). A `jobDir` that an earlier attempt replaced with a link or a file is removed (the
 * link, never what it points to) and made again. Returns the folder's identity for {@linkcode changedDir}.
 */
export async function prepareJobDir(
  jobDir: string,
  specJson: string,
  inputs: readonly string[] = [],
): Promise<DirIdentity> {
  const before = await Deno.lstat(jobDir).catch(() => null);
  if (before !== null && !before.isDirectory) await Deno.remove(jobDir); // A link or a file: never its target.
  await Deno.mkdir(jobDir, { recursive: true });
  // A new attempt inherits nothing: not the runtime's files, nor what the failed attempt wrote (it would be taken
  // for this attempt's outputs). Links are removed, never followed.
  for await (const entry of Deno.readDir(jobDir)) {
    await Deno.remove(join(jobDir, entry.name), { recursive: true }).catch(() => {});
  }
  await writeAtomic(join(jobDir, JOB_FILES.spec), specJson);
  const copied = new Map<string, InputStamp>();
  for (const input of inputs) {
    const target = join(jobDir, basename(input));
    await Deno.copyFile(input, target);
    const stat = await Deno.lstat(target);
    copied.set(basename(input), {
      ino: stat.ino ?? 0,
      size: stat.size,
      mtimeMs: Math.floor(stat.mtime?.getTime() ?? 0),
    });
  }
  const info = await Deno.lstat(jobDir);
  return { dev: info.dev, ino: info.ino ?? 0, inputs: copied };
}

/** An input file as copied into the job directory: while it still is, it is no output. */
export interface InputStamp {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

/**
 * Why `jobDir` is no longer the folder `identity` names (the job renamed it and left a link or another folder in
 * its place), or `null` when it still is. Nothing of a replaced folder is read or kept: it may be anyone's.
 */
export async function changedDir(jobDir: string, identity: DirIdentity): Promise<string | null> {
  const info = await Deno.lstat(jobDir).catch(() => null);
  if (info === null) return `the job removed its folder ${jobDir}`;
  if (info.isSymlink) return `the job replaced its folder ${jobDir} with a symbolic link`;
  if (!info.isDirectory) return `the job replaced its folder ${jobDir} with a file`;
  if (info.dev !== identity.dev || (info.ino ?? 0) !== identity.ino) {
    return `the job replaced its folder ${jobDir} with another folder`;
  }
  return null;
}

/** Write `text` to `path` through a temporary file and a rename: a reader sees the old file or the new one. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** Whether Blender reached bgproc's runtime in this attempt. */
export function reachedRuntime(jobDir: string): Promise<boolean> {
  return Deno.lstat(join(jobDir, JOB_FILES.runtime)).then((info) => info.isFile, () => false);
}

/**
 * Read the job's progress: a number, or `undefined` when there is none yet
 * or the file is anything but a small regular file (a link, a FIFO, a
 * device are ignored, never followed, never waited on).
 */
export async function readProgress(jobDir: string): Promise<number | undefined> {
  const text = await readRegularFile(join(jobDir, JOB_FILES.progress), PROGRESS_READ_LIMIT, false).catch(() => null);
  if (text === null) return undefined;
  const value = Number.parseFloat(text);
  return Number.isFinite(value) ? value : undefined;
}

/**
 * Read and parse a JSON file the job wrote: `undefined` when it does not
 * exist.
 *
 * @throws {FileTooLargeError} When it is larger than `limit` bytes (checked before reading).
 * @throws {Error} When it is not a regular file, or not JSON.
 */
export async function readJobJson(path: string, limit: number): Promise<unknown> {
  const text = await readRegularFile(path, limit, true);
  return text === null ? undefined : JSON.parse(text);
}

/**
 * Read `path` as UTF-8 if it is a regular file (links are not followed, and
 * the open never waits on a FIFO). Returns `null` when it does not exist.
 * A file over `limit` bytes throws when `strict`, else reads as its first
 * `limit` bytes.
 */
async function readRegularFile(path: string, limit: number, strict: boolean): Promise<string | null> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return null;
    if ((error as { code?: string }).code === "ELOOP") throw new Error(`${path} is a symbolic link`);
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error(`${path} is not a regular file`);
    if (strict && info.size > limit) throw new FileTooLargeError(path, info.size, limit);
    const buffer = new Uint8Array(Math.min(info.size, limit));
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return new TextDecoder().decode(buffer.subarray(0, filled));
  } finally {
    await handle.close();
  }
}
