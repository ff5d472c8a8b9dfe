/** A job dropped before any Blender ran it: the one way to say so, for the supervisor, renders and NATS workers. */

import { type DropReason, type JobDroppedDetails, JobDroppedError } from "./errors.ts";

/** The report of a job no Blender ran: no exit, signal, Python error, output or command line. */
export function detailsBeforeBlender(
  jobName: string,
  reason: DropReason,
  summary: string,
  attempts: number,
): JobDroppedDetails {
  return {
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
  };
}

/** A `JobDroppedError` for a job no Blender ran (see {@linkcode detailsBeforeBlender}). */
export function droppedBeforeBlender(
  jobName: string,
  reason: DropReason,
  summary: string,
  attempts: number,
  options?: ErrorOptions,
): JobDroppedError {
  return new JobDroppedError(detailsBeforeBlender(jobName, reason, summary, attempts), options);
}
