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

/** What starts a process. */
export interface Spawner {
  spawn(command: string, args: readonly string[], options: { env?: Record<string, string> }): SpawnedProcess;
}

/**
 * Starts processes with `Deno.Command`, each in a process group of its own
 * (`detached`), so a kill reaches Blender and everything Blender started.
 * Stdin stays open: the Python side takes its end-of-file as the host's death.
 */
export const localSpawner: Spawner = {
  spawn(command, args, options) {
    const child = new Deno.Command(command, {
      args: [...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      detached: true,
      ...(options.env === undefined ? {} : { env: options.env }),
    }).spawn();
    const stdin = child.stdin.getWriter();
    let stdinClosed = false;
    const pid = child.pid;
    return {
      pid,
      stdout: child.stdout,
      stderr: child.stderr,
      status: child.status.then(({ code, signal }) => ({ code, signal })),
      kill(signal) {
        try {
          Deno.kill(-pid, signal);
        } catch {
          try {
            child.kill(signal);
          } catch {
            // Already gone.
          }
        }
      },
      async closeStdin() {
        if (stdinClosed) return;
        stdinClosed = true;
        await stdin.close().catch(() => {});
      },
    };
  },
};
