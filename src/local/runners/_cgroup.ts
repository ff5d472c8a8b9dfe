/**
 * A cgroup (v2) per Blender the host starts, where the host may make one: everything that Blender starts stays in it,
 * daemons in sessions of their own included, so when Blender ends (killed, crashed, `os._exit`) the host ends them
 * all with `cgroup.kill`. Blender's own subreaper cannot: it dies with Blender. Where no cgroup can be made (no
 * cgroup2 mount, no right to write there, Deno's permissions), `openCgroup` says why and nothing else changes.
 */

import { join } from "node:path";

/** One Blender's cgroup. */
export interface Cgroup {
  /** Kill every process in it, wait (at most 2 s) until it is empty, and remove it. Never throws. */
  killAll(): Promise<void>;
}

/** How long `killAll` waits for the cgroup to empty. */
const EMPTY_MS = 2_000;

let base: Promise<string | { why: string }> | undefined;
let serial = 0;
let noticed = false;

/** `true` the first time it is called in this process: the fallback is said once, in the first job's log. */
export function firstFallbackNotice(): boolean {
  const first = !noticed;
  noticed = true;
  return first;
}

let hostManages: boolean | undefined;

/**
 * Whether this host can give Blenders cgroups itself: Deno lets it read /proc and write /sys only with
 * `--allow-all`. Without, each Blender makes its own, guarded (`python/bgproc/_jail.py`, asked by `selfJailEnv`).
 */
export function hostManagesCgroups(): boolean {
  if (hostManages === undefined) {
    try {
      Deno.readTextFileSync("/proc/self/cgroup");
      hostManages = true;
    } catch (error) {
      hostManages = !(error instanceof Deno.errors.NotCapable);
    }
  }
  return hostManages;
}

/** The environment that asks a Blender to make its own cgroup (the first one asked also says if it cannot). */
export function selfJailEnv(): Record<string, string> {
  return {
    BGPROC_CGROUP: "self",
    BGPROC_HOST_PID: String(Deno.pid),
    BGPROC_CGROUP_NOTICE: firstFallbackNotice() ? "1" : "0",
  };
}

/** The folder this host makes its cgroups in (`<own cgroup>/bgproc-<pid>`), or why there is none. */
function hostFolder(): Promise<string | { why: string }> {
  base ??= (async () => {
    try {
      const mounts = await Deno.readTextFile("/proc/self/mountinfo");
      const mount = mounts.split("\n").map((line) => line.split(" ")).find((fields) =>
        fields[fields.indexOf("-") + 1] === "cgroup2"
      )?.[4];
      if (mount === undefined) return { why: "no cgroup2 file system is mounted" };
      const own = (await Deno.readTextFile("/proc/self/cgroup")).split("\n").find((line) => line.startsWith("0::"));
      if (own === undefined) return { why: "this process is in no cgroup2 cgroup" };
      const parent = join(mount, own.slice(3));
      await sweepDeadHosts(parent);
      return join(parent, `bgproc-${Deno.pid}`);
    } catch (error) {
      return { why: `cgroups cannot be read (${(error as Error).message})` };
    }
  })();
  return base;
}

/**
 * Put the process `pid` (just started, before it has started anything) into a cgroup of its own.
 *
 * @returns Its cgroup, or why none could be made.
 */
export async function openCgroup(pid: number): Promise<Cgroup | { why: string }> {
  const folder = await hostFolder();
  if (typeof folder !== "string") return folder;
  const dir = join(folder, `blender-${++serial}`);
  let failure: unknown;
  // Twice: another Blender's killAll may remove the host's folder between the mkdir and the write.
  for (let tries = 0; tries < 2; tries++) {
    try {
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(join(dir, "cgroup.procs"), String(pid));
      // A wrapper (bash, then bwrap) may have started Blender before the line above: what it started follows it in,
      // twice over for one forked meanwhile (none of them has started anything of the job's yet).
      for (let pass = 0; pass < 2; pass++) {
        for (const child of await descendants(pid)) {
          await Deno.writeTextFile(join(dir, "cgroup.procs"), String(child)).catch(() => {});
        }
      }
      return { killAll: () => killAll(dir, folder) };
    } catch (error) {
      failure = error;
      await Deno.remove(dir).catch(() => {});
    }
  }
  await Deno.remove(folder).catch(() => {});
  return { why: `no cgroup could be made in ${folder} (${(failure as Error).message})` };
}

async function killAll(dir: string, folder: string): Promise<void> {
  const deadline = Date.now() + EMPTY_MS;
  while (Date.now() < deadline) {
    const pids = await Deno.readTextFile(join(dir, "cgroup.procs")).then(
      (text) => text.split("\n").filter((line) => line !== "").map(Number),
      () => [],
    );
    if (pids.length === 0) break;
    // cgroup.kill (Linux 5.14+) ends them all at once, forks included; else one by one until none is left.
    await Deno.writeTextFile(join(dir, "cgroup.kill"), "1").catch(() => {
      for (const pid of pids) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Gone already.
        }
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await Deno.remove(dir).catch(() => {});
  await Deno.remove(folder).catch(() => {}); // Only when no other Blender's cgroup is in it.
}

/**
 * The processes `pid` started, and theirs, from each thread's `/proc/<pid>/task/<tid>/children`: a few reads for a
 * wrapper's chain, not a scan of every process on the machine at each Blender start.
 */
async function descendants(pid: number): Promise<number[]> {
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0 && found.length < 1_000) {
    const parent = queue.shift()!;
    const tasks = await Array.fromAsync(Deno.readDir(`/proc/${parent}/task`)).catch(() => []);
    for (const task of tasks) {
      const text = await Deno.readTextFile(`/proc/${parent}/task/${task.name}/children`).catch(() => "");
      for (const child of text.split(" ").filter((word) => word !== "").map(Number)) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/**
 * Remove the cgroups of hosts that are gone (a CLI that exited as its job ended, a host that was killed), ending
 * whatever is still in them: nothing a job started outlives its host for long, and no empty cgroup is left.
 */
async function sweepDeadHosts(parent: string): Promise<void> {
  try {
    for await (const entry of Deno.readDir(parent)) {
      const match = /^bgproc-(\d+)$/.exec(entry.name);
      if (match === null || !entry.isDirectory || isRunning(Number(match[1]))) continue;
      const folder = join(parent, entry.name);
      for await (const child of Deno.readDir(folder)) {
        if (child.isDirectory) await killAll(join(folder, child.name), folder);
      }
      await Deno.remove(folder).catch(() => {});
    }
  } catch {
    // Not readable: nothing of ours to sweep.
  }
}

function isRunning(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}
