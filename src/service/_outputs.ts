/**
 * Job outputs: with an `outputsDir`, each job gets a fresh folder in it named as the job is (removed again at the
 * job's end if it stayed empty), passed to its script as
 * `passed_data["output_dir"]`; the images the script leaves there (regular `.png`, `.jpg`, `.webp`, `.gif` files
 * directly inside it) are listed with the job and served, for the dashboard's thumbnails.
 */

import { join } from "node:path";
import { HttpError } from "./_http.ts";

const OUTPUT_FILE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.(png|jpe?g|webp|gif)$/i;

const TYPES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
  gif: "image/gif",
};

/**
 * A fresh, empty folder for one job's outputs, named as the job is (one name in the API and on disk). What an
 * ended job of that name left there goes first: the new job replaces it. Synchronous, so that no removal of an
 * empty folder ({@linkcode removeIfEmpty}) can come between.
 */
export function makeOutputDir(outputsDir: string, name: string): string {
  const dir = join(outputsDir, name);
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  Deno.mkdirSync(dir);
  return dir;
}

/** Remove a job's output folder if the job left nothing in it (one `rmdir`: a folder with files stays). */
export function removeIfEmpty(dir: string | undefined): void {
  if (dir === undefined) return;
  try {
    Deno.removeSync(dir);
  } catch {
    // Not empty (the job's outputs), or gone already.
  }
}

/** The largest image the dashboard shows as a thumbnail; larger ones are listed as links only. */
export const THUMBNAIL_MAX_BYTES = 16 * 1024 * 1024;

/** An image in a job's output folder. */
export interface OutputImage {
  readonly name: string;
  readonly bytes: number;
}

/** The images in a job's output folder, sorted by name. */
export async function listOutputs(dir: string): Promise<OutputImage[]> {
  const images: OutputImage[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || entry.isSymlink || !OUTPUT_FILE.test(entry.name)) continue;
      const info = await Deno.lstat(join(dir, entry.name)).catch(() => null);
      if (info?.isFile) images.push({ name: entry.name, bytes: info.size });
    }
  } catch {
    return []; // Gone, or never made.
  }
  return images.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * The response for one output image, streamed from the file (never read whole: an image can be larger than the
 * service's memory); the file closes when the response ends or the client goes away.
 *
 * @throws {HttpError} 404 when `file` is not an image directly in `dir` (symlinks and subfolders are not).
 */
export async function outputResponse(dir: string, file: string): Promise<Response> {
  const missing = new HttpError(404, "no such output", `The job has no output '${file}'`);
  if (!OUTPUT_FILE.test(file)) throw missing;
  const path = join(dir, file);
  let opened: Deno.FsFile | undefined;
  try {
    const info = await Deno.lstat(path);
    if (!info.isFile) throw missing;
    opened = await Deno.open(path);
    // The file opened is the one checked: a link put in its place between the two would be another inode.
    const same = await opened.stat();
    if (!same.isFile || same.ino !== info.ino || same.dev !== info.dev) throw missing;
    return new Response(opened.readable, {
      headers: {
        "content-type": TYPES[file.slice(file.lastIndexOf(".") + 1).toLowerCase()]!,
        "content-length": String(same.size),
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'",
      },
    });
  } catch (error) {
    try {
      opened?.close();
    } catch {
      // Closed already.
    }
    if (error instanceof HttpError) throw error;
    throw missing;
  }
}

/** Remove a job's output folder (when the job is removed). */
export async function removeOutputs(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await Deno.remove(dir, { recursive: true }).catch(() => {});
}
