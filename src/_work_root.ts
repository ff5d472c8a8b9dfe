/**
 * The manager's work root: one fresh folder per manager, marked with the
 * owning process, so that a later manager can tell a root left by a crashed
 * host from one in use, and remove only the former.
 */

import { join } from "node:path";
import { tmpdir } from "node:os";

const MARKER = ".bgproc-root.json";
const ROOT_NAME = /^bgproc-\d+-\d+-/;

let managerCount = 0;

interface Owner {
  readonly pid: number;
  /** The owner's boot (machine and boot) and pid namespace: a pid means nothing elsewhere. */
  readonly bootId?: string | null;
  readonly pidNamespace?: string | null;
  /** Set by `close()` with `keepFiles`: the root is the user's now, never swept. */
  readonly kept?: boolean;
  /** The process's start time in clock ticks since boot (/proc/PID/stat field 22): tells a reused pid apart. */
  readonly startTicks: string | null;
}

/** Remove roots in `dir` whose owner process is gone, then make and mark a fresh root. */
export function makeWorkRoot(dir: string = tmpdir()): string {
  removeStaleRoots(dir);
  const root = Deno.makeTempDirSync({ dir, prefix: `bgproc-${Deno.pid}-${++managerCount}-` });
  const owner: Owner = {
    pid: Deno.pid,
    startTicks: startTicks(Deno.pid),
    bootId: bootId(),
    pidNamespace: pidNamespace(),
  };
  Deno.writeTextFileSync(join(root, MARKER), JSON.stringify(owner));
  return root;
}

/** Remove the bgproc work roots in `dir` whose owning process no longer runs. Returns the removed paths. */
export function removeStaleRoots(dir: string): string[] {
  const removed: string[] = [];
  // Without /proc (not Linux) a dead owner cannot be told from a live one: remove nothing.
  if (startTicks(Deno.pid) === null) return removed;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return removed; // makeTempDirSync will report a bad dir.
  }
  for (const entry of entries) {
    if (!entry.isDirectory || !ROOT_NAME.test(entry.name)) continue;
    const root = join(dir, entry.name);
    let owner: Owner;
    try {
      owner = JSON.parse(Deno.readTextFileSync(join(root, MARKER)));
    } catch {
      continue; // Not ours, or still being made: leave it.
    }
    const sameMachine = owner.bootId === bootId() && owner.pidNamespace === pidNamespace();
    if (typeof owner.pid !== "number" || owner.kept === true || !sameMachine || ownerRuns(owner)) continue;
    try {
      Deno.removeSync(root, { recursive: true });
      removed.push(root);
    } catch {
      // Another manager got there first, or it is not ours to remove.
    }
  }
  return removed;
}

/** Mark `root` as kept (`keepFiles`): later managers leave it alone. */
export function markKept(root: string): void {
  try {
    const path = join(root, MARKER);
    const owner: Owner = JSON.parse(Deno.readTextFileSync(path));
    Deno.writeTextFileSync(path, JSON.stringify({ ...owner, kept: true }));
  } catch {
    // No marker: nothing would sweep it anyway.
  }
}

function bootId(): string | null {
  try {
    return Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim();
  } catch {
    return null;
  }
}

function pidNamespace(): string | null {
  try {
    return Deno.readLinkSync("/proc/self/ns/pid");
  } catch {
    return null;
  }
}

function ownerRuns(owner: Owner): boolean {
  const ticks = startTicks(owner.pid);
  return ticks !== null && (owner.startTicks === null || ticks === owner.startTicks);
}

function startTicks(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}
