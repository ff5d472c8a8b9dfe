/** Finding the Blender executable. */

import { delimiter, isAbsolute, join, resolve } from "node:path";
import { BlenderNotFoundError } from "./errors.ts";

/** Options of {@linkcode findBlender}. */
export interface FindBlenderOptions {
  /** An explicit path to the executable; it wins over everything else. */
  blender?: string;
  /**
   * The environment to read `BLENDER` and `PATH` from.
   *
   * @default {Deno.env.toObject()}
   */
  env?: Readonly<Record<string, string>>;
}

/**
 * Find Blender: the `blender` option, then `$BLENDER`, then `blender` on
 * `PATH`. A bare command name (`"blender"`, `"blender-4.2"`) in the option or
 * `$BLENDER` is looked up on `PATH`, as a shell would; anything with a `/` is
 * a path. Returns an absolute path to an executable file.
 *
 * @param options Where to look.
 * @returns The absolute path of the Blender executable.
 * @throws {BlenderNotFoundError} When none of those places holds an executable.
 *
 * @example Find the Blender this machine has
 * ```ts ignore
 * import { findBlender } from "@bgproc/blender";
 *
 * console.log(findBlender()); // e.g. "/usr/bin/blender"
 * ```
 */
export function findBlender(options: FindBlenderOptions = {}): string {
  const env = options.env ?? Deno.env.toObject();
  const dirs = (env.PATH ?? "").split(delimiter).filter((dir) => dir !== "");
  // A bare command name ("blender-4.2") is looked up on PATH, as a shell would; a path is taken as it is.
  const onPath = (name: string) => name.includes("/") ? [name] : dirs.map((dir) => join(dir, name));
  const searched: string[] = [];
  const candidates: string[] = [];
  if (options.blender !== undefined) {
    candidates.push(...onPath(options.blender));
    searched.push(`the 'blender' option (${options.blender})`);
  } else if (env.BLENDER !== undefined && env.BLENDER !== "") {
    candidates.push(...onPath(env.BLENDER));
    searched.push(`$BLENDER (${env.BLENDER})`);
  } else {
    candidates.push(...onPath("blender"));
    searched.push(`'blender' on PATH (${dirs.join(delimiter) || "empty"})`);
  }
  for (const candidate of candidates) {
    const path = isAbsolute(candidate) ? candidate : resolve(candidate);
    if (isExecutableFile(path)) return path;
  }
  throw new BlenderNotFoundError(searched);
}

function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && (info.mode === null || (info.mode & 0o111) !== 0);
  } catch {
    return false;
  }
}

/**
 * Ask a Blender for its version (`blender --version`), e.g. `"5.2.2 LTS"`.
 *
 * @param blender The Blender executable (or a wrapper that runs one).
 * @returns The version as Blender prints it after "Blender ", or `"unknown"` when it printed none.
 * @throws {Deno.errors.NotFound} When `blender` does not exist (and other errors of starting it).
 *
 * @example Print the version of the Blender bgproc would use
 * ```ts ignore
 * import { blenderVersion, findBlender } from "@bgproc/blender";
 *
 * console.log(await blenderVersion(findBlender())); // e.g. "3.4.1"
 * ```
 */
export async function blenderVersion(blender: string): Promise<string> {
  const output = await new Deno.Command(blender, {
    args: ["--version"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  })
    .output();
  const match = /^Blender (\S.*)$/m.exec(new TextDecoder().decode(output.stdout));
  return match?.[1]?.trim() ?? "unknown";
}
