/**
 * CPU time of processes, from Linux's `/proc`: what a bench run cost each process (and the processes it started),
 * in ms. Elsewhere every reading is `NaN`.
 */

/** Clock ticks per second of `/proc/<pid>/stat` times: 100 on every Linux our bench runs on (`getconf CLK_TCK`). */
const TICKS_PER_SECOND = 100;

/** `[parent pid, user + system ms]` of each process now. */
function processes(): Map<number, [number, number]> {
  const all = new Map<number, [number, number]>();
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
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ms = (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND;
      all.set(Number(entry.name), [Number(fields[1]), ms]);
    } catch {
      // Gone meanwhile.
    }
  }
  return all;
}

/** CPU ms so far of `pid` and every live process under it; `NaN` without `/proc` or when `pid` is gone. */
export function cpuOfTree(pid: number): number {
  const all = processes();
  if (!all.has(pid)) return NaN;
  let total = 0;
  const under = new Set([pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [child, [parent]] of all) {
      if (!under.has(child) && under.has(parent)) {
        under.add(child);
        grew = true;
      }
    }
  }
  for (const each of under) total += all.get(each)![1];
  return total;
}

/** CPU ms so far of `pid` alone; `NaN` without `/proc` or when it is gone. */
export function cpuOf(pid: number): number {
  return processes().get(pid)?.[1] ?? NaN;
}
