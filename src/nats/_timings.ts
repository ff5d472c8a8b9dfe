/**
 * Attempt timings in job records: a worker appends the one it timed, a host reads them back. A record can say
 * anything (another program, a tampered value): what is read is checked, and what does not fit is left out.
 */

import {
  type AttemptTiming,
  JOB_PHASES,
  type JobPhase,
  type JobTimings,
  jobTimings,
  type PhaseTiming,
} from "../timings.ts";
import { type JobRecord, MAX_RECORDED_TIMINGS } from "./_protocol.ts";

/** `recorded` (a record's `timings`) with `timing` added, the last {@linkcode MAX_RECORDED_TIMINGS} kept. */
export function withTiming(recorded: unknown, timing: AttemptTiming): AttemptTiming[] {
  return [...readTimings(recorded), timing].slice(-MAX_RECORDED_TIMINGS);
}

/** An ended job's timings from its record: from its submission to its last recorded attempt's end. */
export function recordTimings(record: JobRecord): JobTimings {
  const attempts = readTimings(record.timings);
  const submitted = Date.parse(record.submittedAt);
  const updated = Date.parse(record.updatedAt);
  // An attempt its host ended (overdue) or a worker lost records no timing: the record's last change is the end.
  const endMs = Math.max(attempts.at(-1)?.endMs ?? -Infinity, Number.isFinite(updated) ? updated : -Infinity);
  if (!Number.isFinite(endMs)) return jobTimings(Date.now(), attempts, Date.now());
  return jobTimings(Number.isFinite(submitted) ? submitted : endMs, attempts, endMs);
}

/** The attempt timings a record holds that can be read, in order. */
export function readTimings(recorded: unknown): AttemptTiming[] {
  if (!Array.isArray(recorded)) return [];
  const timings: AttemptTiming[] = [];
  for (const entry of recorded.slice(-MAX_RECORDED_TIMINGS)) {
    const timing = readTiming(entry);
    if (timing !== undefined) timings.push(timing);
  }
  return timings;
}

/** Every outcome an attempt can have (the compiler checks the list is whole). */
const OUTCOMES = new Set<string>(Object.keys(
  {
    completed: true,
    error: true,
    crashed: true,
    "timed-out": true,
    killed: true,
    "start-failed": true,
    "result-too-large": true,
  } satisfies Record<AttemptTiming["outcome"], true>,
));

function readTiming(value: unknown): AttemptTiming | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const entry = value as Record<string, unknown>;
  const { attempt, startMs, endMs, outcome, ranOn, blender, phases } = entry;
  if (!Number.isInteger(attempt) || (attempt as number) < 1 || (attempt as number) > 1000) return undefined;
  if (!isTime(startMs) || !isTime(endMs) || startMs > endMs) return undefined;
  if (typeof outcome !== "string" || !OUTCOMES.has(outcome) || typeof ranOn !== "string") return undefined;
  if (!Array.isArray(phases)) return undefined;
  const read: PhaseTiming[] = [];
  for (const phase of phases.slice(0, MAX_READ_PHASES)) {
    const { phase: name, startMs: start, endMs: end } = (phase ?? {}) as Record<string, unknown>;
    if (!JOB_PHASES.includes(name as JobPhase) || !isTime(start) || !isTime(end) || start > end) continue;
    read.push({ phase: name as JobPhase, startMs: start, endMs: end });
  }
  return {
    attempt: attempt as number,
    startMs,
    endMs,
    outcome: outcome as AttemptTiming["outcome"],
    ranOn: ranOn.slice(0, 4096),
    ...(typeof blender === "string" ? { blender: blender.slice(0, 200) } : {}),
    phases: clipped(read, startMs, endMs),
  };
}

/** The most phases read of one recorded attempt (a worker records at most the runtime's 16 and its own 4). */
const MAX_READ_PHASES = 24;

/** `phases`, each kept within its attempt's `startMs`..`endMs` (a record, or a clock, may say otherwise). */
export function clipped(phases: readonly PhaseTiming[], startMs: number, endMs: number): PhaseTiming[] {
  const clip = (value: number) => Math.min(Math.max(value, startMs), endMs);
  return phases.map((phase) => ({ ...phase, startMs: clip(phase.startMs), endMs: clip(phase.endMs) }));
}

function isTime(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}
