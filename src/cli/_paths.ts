/**
 * Paths are the user's: relative paths on the command line resolve against the folder the user ran the
 * command from, also under `deno task`, which runs in the project's folder but sets `INIT_CWD` to that one.
 */

import { isAbsolute, resolve } from "node:path";

/** The folder the user ran the command from. */
export function userCwd(): string {
  let initCwd: string | undefined;
  try {
    initCwd = Deno.env.get("INIT_CWD");
  } catch {
    initCwd = undefined; // No env permission: the process's own folder.
  }
  return initCwd !== undefined && isAbsolute(initCwd) ? initCwd : Deno.cwd();
}

/** `path` resolved against the user's folder. */
export function userPath(path: string): string {
  return resolve(userCwd(), path);
}
