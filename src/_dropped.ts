/** A job dropped before any Blender ran it: the one way to say so, for the supervisor, renders and NATS workers. */

import { type DropReason, JobDroppedError } from "./errors.ts";

/** A `JobDroppedError` for a job no Blender ran: no exit, signal, Python error, output or command line. */
export function droppedBeforeBlender(
  jobName: string,
  reason: DropReason,
  summary: string,
  attempts: number,
  options?: ErrorOptions,
): JobDroppedError {
  return new JobDroppedError({
    jobName,
    reason,
    summary,
    attempts,
    exitCode: null,
    signal: null,
    pythonError: null,
    stderrTail: "",
    stdoutTail: "",
    commandLine: "",
  }, options);
}
