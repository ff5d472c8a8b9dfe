/** Running jobs from the command line: Ctrl-C kills them, output goes through the display. */

import type { Job } from "../api/job.ts";
import type { Flags } from "./_args.ts";
import { Display } from "./_display.ts";
import { UsageError } from "./_errors.ts";
import { userPath } from "./_paths.ts";

/** The `--log-file` opened for appending, if given. */
export async function openLogFile(flags: Flags): Promise<Deno.FsFile | undefined> {
  if (typeof flags["log-file"] !== "string") return undefined;
  const path = userPath(flags["log-file"]);
  try {
    return await Deno.open(path, { create: true, append: true });
  } catch (error) {
    throw new UsageError(`--log-file: cannot open ${flags["log-file"]}: ${(error as Error).message.split("\n")[0]}`);
  }
}

/** What `watch` saw: whether the user interrupted, and how each job ended on screen. */
export interface Watched {
  /** Whether the user pressed Ctrl-C. */
  readonly interrupted: boolean;
  /** The display, which knows each job's ending and time as its ✔/✖ line said. */
  readonly display: Display;
}

/**
 * Show the jobs' progress until they end; Ctrl-C (SIGINT) kills them.
 *
 * @returns Whether the user interrupted, and the display.
 */
export async function watch(
  manager: { killAll(): Promise<unknown> },
  jobs: readonly Job[],
  flags: Flags,
): Promise<Watched> {
  const logFile = await openLogFile(flags);
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    void manager.killAll().catch(() => {});
  };
  const display = new Display(jobs, {
    logs: flags.verbose === true,
    interrupted: () => interrupted,
    ...(logFile === undefined ? {} : { logFile }),
  });
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    await display.follow();
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    logFile?.close();
  }
  return { interrupted, display };
}
