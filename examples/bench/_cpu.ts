/**
 * CPU time of processes, from Linux's `/proc`: what a bench run cost each process (and the processes it started), in
 * ms, from each thread's time on a CPU in nanoseconds (`/proc/<pid>/task/<tid>/schedstat`). Elsewhere every reading is
 * `NaN`.
 */

/** Every process now: its parent, and its threads' CPU time so far, ms. */
export type CpuSnapshot = ReadonlyMap<number, { readonly parent: number; readonly ms: number }>;

/** Read `/proc` once. */
export function cpuSnapshot(): CpuSnapshot {
  const all = new Map<number, { parent: number; ms: number }>();
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync("/proc");
  } catch {
    return all;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      // The command name (field 2) is in parentheses and may hold spaces: the fields after it start past the last ')'.
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      let ns = 0;
      for (const task of Deno.readDirSync(`/proc/${entry.name}/task`)) {
        ns += Number(Deno.readTextFileSync(`/proc/${entry.name}/task/${task.name}/schedstat`).split(" ")[0]);
      }
      all.set(Number(entry.name), { parent, ms: ns / 1e6 });
    } catch {
      // Gone meanwhile.
    }
  }
  return all;
}

/** `pid` and every process under it in `snapshot`. */
function tree(snapshot: CpuSnapshot, pid: number): Set<number> {
  const under = new Set(snapshot.has(pid) ? [pid] : []);
  let grew = under.size > 0;
  while (grew) {
    grew = false;
    for (const [child, { parent }] of snapshot) {
      if (!under.has(child) && under.has(parent)) {
        under.add(child);
        grew = true;
      }
    }
  }
  return under;
}

/**
 * CPU ms that `pid` (with `withChildren`, and every process under it) used between two snapshots: a process that
 * started meanwhile counts whole, one that ended meanwhile is not seen. `NaN` when `pid` is in neither.
 */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot, pid: number, withChildren = false): number {
  if (!after.has(pid) && !before.has(pid)) return NaN;
  const pids = withChildren ? tree(after, pid) : new Set([pid]);
  let total = 0;
  for (const each of pids) total += after.get(each)!.ms - (before.get(each)?.ms ?? 0);
  return total;
}
