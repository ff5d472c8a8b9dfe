/**
 * What the CLI shows of a dropped job: the user's error (message, file, line, their frames), not bgproc's
 * internals. The command line, Blender's version and its output tail are for `--verbose` and `--log-file`.
 */

import { JobDroppedError } from "../errors.ts";
import type { Flags } from "./_args.ts";
import { userPath } from "./_paths.ts";

/** How many of Blender's last stderr lines a crash report shows without `--verbose` (they say why it died). */
const CRASH_LINES = 8;

/**
 * The report of a dropped job for the terminal: the whole report with `verbose`, else its first line, the
 * Python traceback and, for a Blender that crashed or would not start, the last lines of its stderr.
 *
 * @param error Why the job was dropped.
 * @param verbose Whether the user asked for everything (`--verbose`).
 * @returns Lines to print on stderr.
 */
export function dropReport(error: JobDroppedError, verbose: boolean): string {
  if (verbose) return error.report;
  const lines = [error.report.split("\n")[0]!];
  const traceback = error.pythonError?.text.trimEnd() ?? "";
  // A one-line "traceback" (no frames: bgproc's check of the result raised) only repeats the first line.
  if (traceback.includes("\n")) lines.push(traceback);
  const stderr = error.stderrTail.trimEnd();
  if ((error.reason === "crashed" || error.reason === "start-failed") && stderr !== "") {
    lines.push("--- Blender's last lines on stderr ---", ...stderr.split("\n").slice(-CRASH_LINES));
  }
  if (error.commandLine !== "" || stderr !== "") {
    lines.push("(Blender's output and command line: --verbose, or --log-file FILE)");
  }
  return lines.join("\n");
}

/**
 * Append the whole reports of the dropped jobs to `--log-file`, when one was given.
 *
 * @param flags The command's flags.
 * @param errors The dropped jobs' errors.
 */
export async function logReports(flags: Flags, errors: readonly unknown[]): Promise<void> {
  const dropped = errors.filter((error) => error instanceof JobDroppedError);
  if (typeof flags["log-file"] !== "string" || dropped.length === 0) return;
  const text = dropped.map((error) => `${error.jobName} | ${error.report.replaceAll("\n", `\n${error.jobName} | `)}\n`);
  await Deno.writeTextFile(userPath(flags["log-file"]), text.join(""), { append: true });
}
