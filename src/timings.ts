/**
 * Where a job's time went: its queue wait, each attempt, and the phases of each attempt (inside Blender, timed by
 * bgproc's runtime there, and around it). Every job has them (`JobResult.timings`, `Job.timings`), with telemetry on
 * or off; with OpenTelemetry on, the same times make the job's trace.
 */

import type { DropReason } from "./errors.ts";

/**
 * A phase of an attempt, in the order they run:
 *
 * - `fetch`: over NATS, the worker fetches the job's files (script, .blend, passed data blocks, inputs). It starts while
 *   the worker claims the job: what it took before the claim is not in the attempt (the attempt starts at its claim).
 * - `start`: from the attempt's start to bgproc's runtime taking the job: Blender starting (process mode, which
 *   includes Blender opening the job's .blend), a fork of the warm zygote (fork mode), or the job reaching a warm
 *   worker (pool mode); a zygote or pool worker still booting when the attempt started is part of it.
 * - `blend`: the job's .blend opened (fork and pool mode) and its private copy saved; without a .blend, the empty
 *   scene made.
 * - `addons`: the job's add-ons enabled.
 * - `data-blocks`: the passed data blocks loaded.
 * - `script`: the job's script.
 * - `results`: `python_data` checked and the `data_blocks` library written.
 * - `outputs`: the job's files moved to where they are kept.
 * - `upload`: over NATS, the worker uploads the result's files.
 *
 * @example The time a job spent in its script
 * ```ts ignore
 * import type { JobPhase, JobResult } from "@bgproc/blender";
 *
 * function msIn(result: JobResult, phase: JobPhase): number {
 *   return result.timings.attempts.flatMap((attempt) => attempt.phases)
 *     .filter((timing) => timing.phase === phase)
 *     .reduce((sum, timing) => sum + timing.endMs - timing.startMs, 0);
 * }
 * ```
 *
 * Only the phases an attempt went through are listed: a job without add-ons has no `addons` phase, one whose script
 * raised none after `script`. The runtime sends its phases with the job's result or error, so an attempt killed, timed
 * out or crashed inside Blender lists `start` and no phase after it.
 */
export type JobPhase =
  | "fetch"
  | "start"
  | "blend"
  | "addons"
  | "data-blocks"
  | "script"
  | "results"
  | "outputs"
  | "upload";

/** Every {@linkcode JobPhase}, in the order they run. */
export const JOB_PHASES: readonly JobPhase[] = [
  "fetch",
  "start",
  "blend",
  "addons",
  "data-blocks",
  "script",
  "results",
  "outputs",
  "upload",
];

/**
 * One phase of an attempt. Times are milliseconds since the Unix epoch (as `Date.now()`, with fractions).
 *
 * @example Print an attempt's phases
 * ```ts ignore
 * import type { PhaseTiming } from "@bgproc/blender";
 *
 * const show = ({ phase, startMs, endMs }: PhaseTiming) => `${phase} ${(endMs - startMs).toFixed(1)} ms`;
 * ```
 */
export interface PhaseTiming {
  /** Which phase. */
  readonly phase: JobPhase;
  /** When it began. */
  readonly startMs: number;
  /** When it ended. */
  readonly endMs: number;
}

/**
 * One attempt of a job. Times are milliseconds since the Unix epoch.
 *
 * @example Why each attempt of a dropped job ended
 * ```ts ignore
 * import { JobManager } from "@bgproc/blender";
 *
 * await using manager = new JobManager({ maxAttempts: 3 });
 * const job = manager.addJob({ script: "./flaky.py" });
 * await job.result().catch(() => {});
 * for (const attempt of job.timings?.attempts ?? []) console.log(attempt.attempt, attempt.outcome, attempt.ranOn);
 * ```
 */
export interface AttemptTiming {
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** When it started: Blender's start (or fork, or the warm worker's turn); over NATS, when a worker got the job. */
  readonly startMs: number;
  /** When it ended (over NATS: when its worker had uploaded what it made). */
  readonly endMs: number;
  /** How it ended. */
  readonly outcome: "completed" | DropReason;
  /** What ran it: its command line locally; over NATS, the worker and what ran the job there. */
  readonly ranOn: string;
  /** The Blender (and its Python) it ran in, once bgproc's runtime said so. */
  readonly blender?: string;
  /** Its phases, in order (see {@linkcode JobPhase}). */
  readonly phases: readonly PhaseTiming[];
}

/**
 * Where a job's time went, from `addJob` to its end: a timeline with the queue wait, each attempt and the phases
 * of each. Times are milliseconds since the Unix epoch (as `Date.now()`, with fractions).
 *
 * @example Print where a job's time went
 * ```ts ignore
 * import { JobManager } from "@bgproc/blender";
 *
 * await using manager = new JobManager();
 * const { timings } = await manager.addJob({ script: "./examples/scripts/hello.py" }).result();
 * console.log(`queued for ${timings.queueWaitMs.toFixed(1)} ms`);
 * for (const attempt of timings.attempts) {
 *   for (const { phase, startMs, endMs } of attempt.phases) console.log(phase, (endMs - startMs).toFixed(1), "ms");
 * }
 * ```
 */
export interface JobTimings {
  /** When the job was added (`addJob`). */
  readonly addedMs: number;
  /** When it ended. */
  readonly endMs: number;
  /** From `addJob` to its first attempt's start (the whole job's time, for a job dropped before any attempt). */
  readonly queueWaitMs: number;
  /** Its attempts, first to last (over NATS: as their workers recorded them, at most the last 16). */
  readonly attempts: readonly AttemptTiming[];
}

/** A job's timings from when it was added, its attempts and its end. */
export function jobTimings(addedMs: number, attempts: readonly AttemptTiming[], endMs: number): JobTimings {
  const first = attempts[0];
  return { addedMs, endMs, queueWaitMs: Math.max(0, (first?.startMs ?? endMs) - addedMs), attempts };
}
