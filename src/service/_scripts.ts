/**
 * The scripts a service may run: regular `.py` files directly inside its scripts folder, named by file name.
 * A symlink, a folder, a file in a subfolder, or anything that is not `.py` is not a script, wherever it
 * points.
 */

import { join } from "node:path";
import { HttpError } from "./_http.ts";

const SCRIPT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.py$/;

/** The names of the scripts in `dir`, sorted. */
export async function listScripts(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && !entry.isSymlink && SCRIPT_NAME.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

/**
 * The path of the script `name` in `dir`.
 *
 * @throws {HttpError} 400 when `name` is not the name of a regular `.py` file directly in `dir`.
 */
export async function resolveScript(dir: string, name: unknown): Promise<string> {
  const refuse = (detail: string) => new HttpError(400, "bad script", detail);
  if (typeof name !== "string" || !SCRIPT_NAME.test(name)) {
    throw refuse("'script' must be the file name of a .py script in the service's scripts folder");
  }
  const path = join(dir, name);
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch {
    throw refuse(`There is no script '${name}'`);
  }
  if (info.isSymlink) throw refuse(`'${name}' is a symbolic link, not a script`);
  if (!info.isFile) throw refuse(`'${name}' is not a regular file`);
  return path;
}
