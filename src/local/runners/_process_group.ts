/**
 * A local process in a process group of its own (`Deno.Command`, never a
 * shell), as every runner starts Blender. Stdin stays open: the Python
 * runtime takes its end-of-file as the host's death (and a warm Blender
 * reads its requests there).
 */

import { type Cgroup, hostManagesCgroups, openCgroup, selfJailEnv } from "./_cgroup.ts";

/**
 * How long a Blender's output may stay open after it is reaped: a process it left behind in a session of its own
 * (which no group kill reaches) can hold the pipes, and the attempt's end must not wait on it.
 */
export const OUTPUT_GRACE_MS = 1_000;

/** How a process ended. */
export interface ExitStatus {
  /** The exit code (128 + n for signal n, as Deno reports it). */
  readonly code: number;
  /** The signal that ended it, or `null`. */
  readonly signal: string | null;
}

/** A running process and its group. */
export interface ProcessGroup {
  readonly pid: number;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** Settles once the process has exited and been reaped. */
  readonly status: Promise<ExitStatus>;
  /** Send `signal` to the process and everything it started. Never throws. */
  kill(signal: Deno.Signal): void;
  /** Write to the process's stdin (a warm Blender's requests). Never rejects: a dead process's exit says why. */
  send(data: Uint8Array): Promise<void>;
  /** Close the process's stdin: the Python runtime ends Blender when it sees end-of-file. */
  closeStdin(): Promise<void>;
  /**
   * `null` once the process is in a cgroup of the host's making (so nothing it starts outlives it), or when the host
   * may not make one and Blender makes its own (`python/bgproc/_jail.py`, which says itself when it cannot); else why
   * not: then a process it leaves in a session of its own can outlive it when it is killed.
   */
  readonly unjailed: Promise<string | null>;
}

/**
 * Start `command` in a process group of its own, stdin open, and in a cgroup of its own where the host may make one.
 * Once it is reaped, whatever it left in its group, and in its cgroup, is killed, so no orphan outlives it.
 */
export function spawnDetached(command: string, args: readonly string[]): ProcessGroup {
  const hostJails = hostManagesCgroups();
  const child = new Deno.Command(command, {
    args: [...args],
    ...(hostJails ? {} : { env: selfJailEnv() }),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  const stdin = child.stdin.getWriter();
  let stdinClosed = false;
  const pid = child.pid;
  // At once: Blender starts nothing of its own for the first second, so all it starts is born in the cgroup. Without
  // the permission, Blender makes its own and says so in its first job's output when it cannot.
  const jail: Promise<Cgroup | { why: string | null }> = hostJails ? openCgroup(pid) : Promise.resolve({ why: null });
  const kill = (signal: Deno.Signal) => {
    try {
      Deno.kill(-pid, signal);
    } catch {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
    }
  };
  return {
    pid,
    stdout: child.stdout,
    stderr: child.stderr,
    status: child.status.then(async ({ code, signal }) => {
      kill("SIGKILL");
      await groupGone(pid);
      const cgroup = await jail;
      if ("killAll" in cgroup) await cgroup.killAll(); // What left the group: daemons in sessions of their own.
      return { code, signal };
    }),
    unjailed: jail.then((cgroup) => "killAll" in cgroup ? null : cgroup.why),
    kill,
    async send(data) {
      if (!stdinClosed) await stdin.write(data).catch(() => {});
    },
    async closeStdin() {
      if (stdinClosed) return;
      stdinClosed = true;
      await stdin.close().catch(() => {});
    },
  };
}

/**
 * Wait until no process is left in the group `pgid`, at most `GROUP_GONE_MS`:
 * the process Deno started may be a wrapper (bash, then bwrap) that exits
 * before the Blender it runs has finished dying.
 */
async function groupGone(pgid: number): Promise<void> {
  const deadline = Date.now() + GROUP_GONE_MS;
  while (Date.now() < deadline) {
    try {
      Deno.kill(-pgid, "SIGKILL");
    } catch {
      return; // No process left in the group.
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The longest wait for a killed group to be gone. */
const GROUP_GONE_MS = 2_000;
