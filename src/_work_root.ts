/**
 * The manager's work root: one fresh folder per manager, holding an
 * advisory lock (`Deno.FsFile.lock`) on its lock file for the manager's
 * life. The kernel drops the lock when the host dies however it dies, so a
 * later manager that can take a root's lock knows its host is gone and
 * removes the root. This works under the permissions the tasks grant
 * (read and write of the folder), with no look at `/proc`.
 */

import { join } from "node:path";
import { tmpdir } from "node:os";

const LOCK = ".bgproc-root.lock";
const KEPT = ".bgproc-kept";
const ROOT_NAME = /^bgproc-\d+-\d+-/;

let managerCount = 0;

/** A work root and the lock that says its host lives. */
export interface WorkRoot {
  readonly path: string;
  /** Let go of the lock (after the root is removed, or marked kept). */
  release(): void;
}

/** Remove roots in `dir` whose host is gone, then make a fresh root and lock it. */
export function makeWorkRoot(dir: string = tmpdir()): WorkRoot {
  removeStaleRoots(dir);
  const path = Deno.makeTempDirSync({ dir, prefix: `bgproc-${Deno.pid}-${++managerCount}-` });
  let lock: Deno.FsFile | undefined;
  try {
    lock = Deno.openSync(join(path, LOCK), { create: true, write: true });
    lock.lockSync(true);
  } catch (error) {
    lock?.close();
    Deno.removeSync(path, { recursive: true });
    throw error;
  }
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      lock.close();
    },
  };
}

/** Remove the bgproc work roots in `dir` whose lock nobody holds. Returns the removed paths. */
export function removeStaleRoots(dir: string): string[] {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return removed; // makeTempDirSync will report a bad dir.
  }
  for (const entry of entries) {
    if (!entry.isDirectory || !ROOT_NAME.test(entry.name)) continue;
    const root = join(dir, entry.name);
    if (exists(join(root, KEPT))) continue;
    let lock: Deno.FsFile;
    try {
      lock = Deno.openSync(join(root, LOCK), { read: true, write: true });
    } catch {
      continue; // Not ours, another version's, or still being made: leave it.
    }
    try {
      if (!lock.tryLockSync(true)) continue; // Its host is alive.
      Deno.removeSync(root, { recursive: true });
      removed.push(root);
    } catch {
      // Another manager got there first, or it is not ours to remove.
    } finally {
      lock.close();
    }
  }
  return removed;
}

/** Mark `root` as kept (`keepFiles`): later managers leave it alone. */
export function markKept(root: string): void {
  try {
    Deno.writeTextFileSync(join(root, KEPT), "kept by keepFiles: bgproc never removes this folder\n");
  } catch {
    // The root is gone: nothing to keep.
  }
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
