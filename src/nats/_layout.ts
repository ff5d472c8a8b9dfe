/**
 * A worker lays out a job's .blend, script and every file they use at the paths they had on the host, under a
 * folder of its own: relative paths in the .blend (and in its libraries) then resolve as on the host, and an absolute
 * path is looked up under the folder when the file is opened (`pathRoot`, `python/bgproc/_remap.py`). A record can
 * say anything: a path that is not absolute, or that would leave the folder, is refused.
 */

import { dirname, isAbsolute, join, normalize, relative } from "node:path";
import type { FileCache } from "./_files.ts";
import { type FileRef, type JobSpec, type Layout, OUTPUTS_FILE_LIMIT } from "./_protocol.ts";

/** The most files a layout may hold. */
const MAX_FILES = 100_000;

/** Where the job's .blend and script are in the laid-out folder. */
export interface LaidOut {
  readonly blendFile: string;
  readonly script: string;
}

/** The spec's layout (read from its file when it travelled as one), or `undefined` when it has none. */
export async function layoutOf(spec: JobSpec, cache: FileCache): Promise<Layout | undefined> {
  if (spec.layoutFile !== undefined) {
    if (!(spec.layoutFile.size <= OUTPUTS_FILE_LIMIT)) {
      throw new Error(`the job's record names a layout of ${spec.layoutFile.size} bytes, more than bgproc reads`);
    }
    return JSON.parse(await Deno.readTextFile(await cache.get(spec.layoutFile))) as Layout;
  }
  return spec.layout;
}

/** Copy the .blend (`blend`), the script (`script`) and each file of `layout` to its host path under `folder`. */
export async function layOut(
  folder: string,
  layout: Layout,
  blend: FileRef,
  script: FileRef,
  cache: FileCache,
): Promise<LaidOut> {
  if (!Array.isArray(layout.files) || layout.files.length > MAX_FILES) {
    throw new Error(`the job's record lists its files wrongly (not a list of at most ${MAX_FILES})`);
  }
  await Deno.mkdir(folder, { recursive: true });
  const place = async (path: unknown, ref: FileRef) => {
    const target = under(folder, path);
    await Deno.mkdir(dirname(target), { recursive: true });
    // A copy, not a link to the cache: the job may write to its files, and the cache serves the next jobs.
    await Deno.copyFile(await cache.get(ref), target);
    return target;
  };
  for (const entry of layout.files) await place(entry?.path, entry?.file);
  return { blendFile: await place(layout.blendPath, blend), script: await place(layout.scriptPath, script) };
}

/** `path` (an absolute host path) under `folder`; throws for one that is not absolute or would leave it. */
function under(folder: string, path: unknown): string {
  if (typeof path !== "string" || !isAbsolute(path) || path.includes("\0")) {
    throw new Error(`the job's record names a file at ${JSON.stringify(path)}, which is not an absolute path`);
  }
  const target = join(folder, normalize(path));
  const inside = relative(folder, target);
  if (inside === "" || inside.startsWith("..") || isAbsolute(inside)) {
    throw new Error(`the job's record names a file at ${JSON.stringify(path)}, outside any folder`);
  }
  return target;
}
