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

/** The images in a job's output folder, sorted. */
export async function listOutputs(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && !entry.isSymlink && OUTPUT_FILE.test(entry.name)) names.push(entry.name);
    }
  } catch {
    return []; // Gone, or never made.
  }
  return names.sort();
}

/**
 * The response for one output image.
 *
 * @throws {HttpError} 404 when `file` is not an image directly in `dir` (symlinks and subfolders are not).
 */
export async function outputResponse(dir: string, file: string): Promise<Response> {
  const missing = new HttpError(404, "no such output", `The job has no output '${file}'`);
  if (!OUTPUT_FILE.test(file)) throw missing;
  const path = join(dir, file);
  try {
    const info = await Deno.lstat(path);
    if (!info.isFile) throw missing;
    const bytes = await Deno.readFile(path);
    return new Response(bytes, {
      headers: {
        "content-type": TYPES[file.slice(file.lastIndexOf(".") + 1).toLowerCase()]!,
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'",
      },
    });
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw missing;
  }
}

/** Remove a job's output folder (when the job is removed). */
export async function removeOutputs(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await Deno.remove(dir, { recursive: true }).catch(() => {});
}
