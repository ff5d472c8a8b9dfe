/**
 * The phases of a local attempt, from what bgproc's runtime wrote in its job folder (`"phases"` in `result.json` or
 * `error.json`, `"at"` in `runtime.json`) and the host's own clock. The folder is the job's: every value is checked,
 * and a phase is kept within the attempt's own start and end, so a script cannot place its phases anywhere else.
 */

import { JOB_PHASES, type JobPhase, type PhaseTiming } from "../../timings.ts";

/** The phases the runtime inside Blender times (the others are the host's and the NATS worker's). */
const RUNTIME_PHASES = new Set<JobPhase>(["blend", "addons", "data-blocks", "script", "results"]);

/** The most phases read from a job's files. */
const MAX_PHASES = 16;

/**
 * The attempt's phases: `start` (from `startMs` to when the runtime took the job, `reachedMs`), then those the
 * runtime reported (`raw`), each within `startMs`..`endMs`; unreadable entries are skipped.
 */
export function attemptPhases(
  startMs: number,
  endMs: number,
  reachedMs: unknown,
  raw: unknown,
): PhaseTiming[] {
  const clip = (value: number) => Math.min(Math.max(value, startMs), endMs);
  const phases: PhaseTiming[] = [];
  if (typeof reachedMs === "number" && Number.isFinite(reachedMs)) {
    phases.push({ phase: "start", startMs, endMs: clip(reachedMs) });
  }
  if (!Array.isArray(raw)) return phases;
  for (const entry of raw.slice(0, MAX_PHASES)) {
    if (!Array.isArray(entry) || entry.length !== 3) continue;
    const [phase, start, end] = entry as unknown[];
    if (typeof phase !== "string" || !RUNTIME_PHASES.has(phase as JobPhase)) continue;
    if (typeof start !== "number" || typeof end !== "number" || !(start <= end)) continue;
    phases.push({ phase: phase as JobPhase, startMs: clip(start), endMs: clip(end) });
  }
  return phases;
}

/** `phases` with `phase` added in its place (phases are kept in the order they run). */
export function withPhase(phases: readonly PhaseTiming[], phase: PhaseTiming): PhaseTiming[] {
  const order = (timing: PhaseTiming) => JOB_PHASES.indexOf(timing.phase);
  return [...phases, phase].sort((a, b) => order(a) - order(b) || a.startMs - b.startMs);
}
