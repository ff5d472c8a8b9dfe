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

/** `# passed_data: {...}` on a line of its own, near the top of a script: the passed data it expects. */
const DECLARATION = /^#\s*passed_data:\s*(\{.*\})\s*$/m;
/** How much of a script is read for its declaration. */
const HEAD_BYTES = 8192;

/**
 * The passed data a script declares as its default (a `# passed_data: {"size": 1}` line in its first 8 KiB),
 * for the dashboard's editor; `{}` when it declares none, or nothing JSON can read as an object.
 *
 * @param path The script, as {@linkcode resolveScript} found it.
 * @returns The declared object, or `{}`.
 */
export async function declaredPassedData(path: string): Promise<Record<string, unknown>> {
  let head: string;
  try {
    using file = await Deno.open(path);
    const buffer = new Uint8Array(HEAD_BYTES);
    const read = await file.read(buffer) ?? 0;
    head = new TextDecoder().decode(buffer.subarray(0, read));
  } catch {
    return {};
  }
  const declared = DECLARATION.exec(head)?.[1];
  if (declared === undefined) return {};
  try {
    const value: unknown = JSON.parse(declared);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : {};
  } catch {
    return {};
  }
}
