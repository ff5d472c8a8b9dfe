/**
 * The seam between the supervisor and the processes it runs. The local
 * spawner starts Blender with `Deno.Command`; tests may hand in another.
 */

/** How a process ended. */
export interface ExitStatus {
  /** The exit code (128 + n for signal n, as Deno reports it). */
  readonly code: number;
  /** The signal that ended it, or `null`. */
  readonly signal: string | null;
}

/** A running process, as the Job actor sees it. */
export interface SpawnedProcess {
  readonly pid: number;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** Settles once the process has exited and been reaped. */
  readonly status: Promise<ExitStatus>;
  /** Send `signal` to the process and everything it started. Never throws. */
  kill(signal: Deno.Signal): void;
  /** Close the process's stdin: the Python runtime ends Blender when it sees end-of-file. */
  closeStdin(): Promise<void>;
}

/** What one attempt asks of a spawner. */
export interface SpawnOptions {
  /** The attempt's job directory. */
  readonly jobDir: string;
}

/** What starts a process for an attempt (or, in pool mode, lends a warm one). */
export interface Spawner {
  spawn(command: string, args: readonly string[], options: SpawnOptions): Promise<SpawnedProcess>;
  /** Stop whatever the spawner keeps running between attempts. */
  close(): Promise<void>;
}

/**
 * Starts processes with `Deno.Command`, each in a process group of its own
 * (`detached`), so a kill reaches Blender and everything Blender started.
 * Stdin stays open: the Python side takes its end-of-file as the host's death.
 */
export const localSpawner: Spawner = {
  spawn(command, args) {
    return Promise.resolve(spawnDetached(command, args));
  },
  close: () => Promise.resolve(),
};

/**
 * Start `command` in a process group of its own, stdin open. Once it is
 * reaped, whatever it left in its group is killed, so no orphan outlives it.
 */
export function spawnDetached(command: string, args: readonly string[]): SpawnedProcess {
  const child = new Deno.Command(command, {
    args: [...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  const stdin = child.stdin.getWriter();
  let stdinClosed = false;
  const pid = child.pid;
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
      await endGroup(pid);
      return { code, signal };
    }),
    kill,
    async closeStdin() {
      if (stdinClosed) return;
      stdinClosed = true;
      await stdin.close().catch(() => {});
    },
  };
}

/**
 * Kill what is left in process group `pgid` once its leader is reaped, and wait until the group is empty (at
 * most `limitMs`). Through a wrapper (a script, bwrap) the leader is not Blender: Blender and its children may still
 * be dying, holding the output pipes, when the leader's status arrives.
 */
async function endGroup(pgid: number, limitMs = 2_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    try {
      Deno.kill(-pgid, "SIGKILL");
    } catch {
      return; // No process is left in the group.
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
