/** A backend's folder on this host: a fresh work root (locked for the manager's life) with bgproc's runtime in it. */

import { dirname, join } from "node:path";
import { materializeRuntime } from "./_runtime.ts";
import { makeWorkRoot, type WorkRoot } from "./_work_root.ts";
import { WorkRootError } from "./errors.ts";

/** A made work root and where its runtime is. */
export interface BackendRoot {
  readonly root: WorkRoot;
  /** The runtime's entry script (`runtime/bgproc/__main__.py`). */
  readonly runtimeEntry: string;
  /** bgproc's own job scripts (append, render chunk, render video). */
  readonly jobScripts: string;
  /** Remove it all and let go of its lock (when the backend cannot be made after all). */
  undo(): void;
}

/**
 * Make a work root in `workDir` and write the runtime into it.
 *
 * @throws {WorkRootError} When either cannot be made (nothing is left behind).
 */
export function makeBackendRoot(workDir: string | undefined): BackendRoot {
  const where = workDir ?? "the system's temporary folder";
  let root: WorkRoot;
  try {
    root = makeWorkRoot(workDir);
  } catch (error) {
    throw new WorkRootError(where, error);
  }
  const undo = () => {
    Deno.removeSync(root.path, { recursive: true });
    root.release();
  };
  try {
    const runtimeEntry = materializeRuntime(root.path);
    return { root, runtimeEntry, jobScripts: join(dirname(runtimeEntry), "jobs"), undo };
  } catch (error) {
    undo();
    throw new WorkRootError(where, error);
  }
}
