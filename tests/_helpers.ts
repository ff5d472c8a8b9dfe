/** Shared test helpers: fixture paths and watching Blender processes from /proc. */

import { fileURLToPath } from "node:url";

/** The local modes, the default first: the fault suites run in each. */
export const MODES = ["fork", "process", "pool"] as const;

/** One of {@linkcode MODES}. */
export type Mode = typeof MODES[number];

/** The absolute path of a file in tests/fixtures. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

/**
 * The pids of live (not zombie) processes whose command line contains
 * `needle`; with `parent`, only that process's children (Blender forks short-lived helpers that
 * share its command line until they exec).
 */
export function processesMatching(needle: string, parent?: number): number[] {
  try {
    return scanProcesses(needle, parent);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
    // Under the README's permissions Deno reads no /proc, but may run programs: `deno eval` has every permission.
    const code = `console.log(JSON.stringify((${scanProcesses.toString()})(${JSON.stringify(needle)}, ${parent})))`;
    const output = new Deno.Command(Deno.execPath(), { args: ["eval", code], stderr: "inherit" }).outputSync();
    return JSON.parse(new TextDecoder().decode(output.stdout));
  }
}

/** `processesMatching` where this process may read /proc. Self-contained: it also runs in a `deno eval`. */
function scanProcesses(needle: string, parent: number | undefined): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue; // Not this scan (a `deno eval`).
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (!cmdline.includes(needle)) continue;
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (state === "Z" || state === "X" || (parent !== undefined && Number(ppid) !== parent)) continue;
      pids.push(Number(entry.name));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/**
 * Fork mode's job children under the work root `root`: live processes that
 * lead their own process group (not their own session) and whose parent (the
 * zygote) also runs with `root` on its command line. The zygote (and a wrapper around it) has a
 * parent that does not.
 */
export function forkChildren(root: string): number[] {
  const matching = new Set(processesMatching(root));
  return [...matching].filter((pid) => {
    try {
      const stat = readProc(`/proc/${pid}/stat`);
      const [, ppid, pgid, sid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // A session leader is not a job's child but a Blender's cgroup guardian (python/bgproc/_jail.py).
      return Number(pgid) === pid && Number(sid) !== pid && matching.has(Number(ppid));
    } catch {
      return false;
    }
  });
}

/** Whether a live (not zombie) process has this pid. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readProc(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** A file of /proc: read directly under `-A`, else through `cat` (the README's permissions run programs, read no /proc). */
function readProc(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
    const output = new Deno.Command("cat", { args: [path], stdout: "piped", stderr: "null" }).outputSync();
    if (!output.success) throw new Deno.errors.NotFound(path);
    return new TextDecoder().decode(output.stdout);
  }
}

/** Sample `sample()` every `everyMs` until `stop()` is called; returns the largest value seen. */
export function watchMax(sample: () => number, everyMs = 20): { stop(): number } {
  let max = sample();
  const timer = setInterval(() => max = Math.max(max, sample()), everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(max, sample());
    },
  };
}

/** Wait until `check()` is true (or resolves true), polling; throws after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** How many inotify watches this process holds (Deno keeps an emptied inotify instance open, so count watches). */
export function inotifyWatches(): number {
  let watches = 0;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`) !== "anon_inode:inotify") continue;
      const info = Deno.readTextFileSync(`/proc/self/fdinfo/${entry.name}`);
      watches += info.split("\n").filter((line) => line.startsWith("inotify wd:")).length;
    } catch {
      // Closed while we looked.
    }
  }
  return watches;
}
