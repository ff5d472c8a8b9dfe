/**
 * What the service knows of each job beyond the manager: the script and data it was started with (for
 * retry), its timings, the drop reason and report, and the tail of its output. Fed by the event stream.
 */

import type { DropReason, JobDroppedError, JobManager, JobState, JsonObject } from "../../mod.ts";
import type { JobTimings } from "../timings.ts";
import type { ManagerEvent } from "./_events.ts";
import { listOutputs, THUMBNAIL_MAX_BYTES } from "./_outputs.ts";

/** How a job's Blender starts, as the job JSON may say (`factoryStartup`, `addons`); checked by `addJob`. */
export interface StartupOptions {
  factoryStartup?: boolean;
  addons?: string[];
}

/** The job JSON's fields that say how Blender starts. */
export const STARTUP_FIELDS: readonly string[] = ["factoryStartup", "addons"];

/** The startup options in a job JSON body, as given (`addJob` checks them and answers a bad one with 400). */
export function startupOptions(body: Record<string, unknown>): StartupOptions {
  return {
    ...(body.factoryStartup === undefined ? {} : { factoryStartup: body.factoryStartup as boolean }),
    ...(body.addons === undefined ? {} : { addons: body.addons as string[] }),
  };
}

/** How many output lines the service keeps per job. */
export const LOG_TAIL = 200;

/** One job's record. */
export interface JobRecord {
  readonly name: string;
  script: string | undefined;
  scriptPath: string | undefined;
  /** The job's output folder, with an `outputsDir`. */
  outputDir: string | undefined;
  passedData: JsonObject | undefined;
  timeout: number | undefined;
  /** How its Blender was asked to start (kept for retry). */
  startup: StartupOptions;
  state: JobState;
  progress: number;
  attempts: number;
  addedAt: Date;
  startedAt: Date | undefined;
  endedAt: Date | undefined;
  reason: DropReason | undefined;
  error: JobDroppedError | undefined;
  log: { attempt: number; stream: "stdout" | "stderr"; line: string }[];
}

/** A short view of a job, for lists and the event stream's snapshot. */
export interface JobSummary {
  readonly name: string;
  readonly script: string | null;
  readonly state: JobState;
  readonly progress: number;
  readonly attempts: number;
  /** Its priority among queued jobs (higher first). */
  readonly priority: number;
  readonly reason: DropReason | null;
  readonly addedAt: string;
  readonly startedAt: string | null;
  readonly endedAt: string | null;
}

/** `" at raises.py:4"`: where the user's Python failed (the file's name only: no server path), or `""`. */
function where(error: JobDroppedError): string {
  if (error.location === null) return "";
  return ` at ${error.location.file.split("/").pop()}:${error.location.line}`;
}

/** Absolute paths in `text`, cut to their last part: reports never show where things are on the server. */
export function redact(text: string): string {
  return text.replace(/(?<![\w.~-])(?:\/[^\s/'"():,;]+)+\//g, "");
}

/**
 * A job's timings as the service tells them, or `null` before it ends: each attempt's `ranOn` (a command line) with
 * its server paths cut by {@linkcode redact}.
 */
export function shownTimings(timings: JobTimings | undefined): JobTimings | null {
  if (timings === undefined) return null;
  return { ...timings, attempts: timings.attempts.map((attempt) => ({ ...attempt, ranOn: redact(attempt.ranOn) })) };
}

/** Every job's record, kept in step with the manager by {@linkcode JobRecords.apply}. */
export class JobRecords {
  readonly #manager: JobManager;
  readonly #records = new Map<string, JobRecord>();

  constructor(manager: JobManager) {
    this.#manager = manager;
  }

  /** The record of `name`, made when the manager has such a job; forgotten when it no longer does. */
  get(name: string): JobRecord | undefined {
    const job = this.#manager.getJob(name);
    if (job === undefined) {
      this.#records.delete(name);
      return undefined;
    }
    let record = this.#records.get(name);
    if (record === undefined) {
      record = {
        name,
        script: undefined,
        scriptPath: undefined,
        outputDir: undefined,
        passedData: undefined,
        timeout: undefined,
        startup: {},
        state: job.state,
        progress: job.progress,
        attempts: job.attempts,
        addedAt: new Date(),
        startedAt: undefined,
        endedAt: undefined,
        reason: undefined,
        error: undefined,
        log: [],
      };
      this.#records.set(name, record);
    }
    return record;
  }

  /** Start a fresh record for a job this service just added. */
  added(name: string, script: string, scriptPath: string, passedData: JsonObject, timeout: number): JobRecord {
    this.#records.delete(name);
    const record = this.get(name)!;
    Object.assign(record, { script, scriptPath, passedData, timeout });
    return record;
  }

  /** Forget `name`. */
  delete(name: string): void {
    this.#records.delete(name);
  }

  /** Update the records from one event. */
  apply(event: ManagerEvent): void {
    if (event.type === "health" || event.type === "unreadable") return;
    const record = this.get(event.name);
    if (record === undefined) return;
    switch (event.type) {
      case "state":
        record.state = event.state;
        record.attempts = Math.max(record.attempts, event.attempt);
        if (event.state === "ACTIVE") record.startedAt ??= new Date();
        if (event.state === "COMPLETED" || event.state === "DROPPED") {
          record.endedAt ??= new Date();
          record.reason = event.reason;
        }
        return;
      case "progress":
        record.progress = Math.max(record.progress, event.progress);
        return;
      case "log":
        record.log.push({ attempt: event.attempt, stream: event.stream, line: event.line });
        if (record.log.length > LOG_TAIL) record.log.shift();
        return;
      default: {
        const never: never = event;
        return never;
      }
    }
  }

  /** The summary of `name` (the manager's live state, the record's timings). */
  summary(name: string): JobSummary | undefined {
    const job = this.#manager.getJob(name);
    const record = this.get(name);
    if (job === undefined || record === undefined) return undefined;
    return {
      name,
      script: record.script ?? null,
      state: job.state,
      progress: job.progress,
      attempts: job.attempts,
      priority: job.priority,
      reason: record.reason ?? null,
      addedAt: record.addedAt.toISOString(),
      startedAt: record.startedAt?.toISOString() ?? null,
      endedAt: record.endedAt?.toISOString() ?? null,
    };
  }

  /** Every job's summary, in the order they were added. */
  summaries(): JobSummary[] {
    return this.#manager.getJobNames().map((name) => this.summary(name)).filter((s) => s !== undefined);
  }

  /** Everything the service tells of one job: its summary, timings, output tail, and its result or report. */
  async detail(name: string): Promise<Record<string, unknown> | undefined> {
    const job = this.#manager.getJob(name);
    const record = this.get(name);
    const summary = this.summary(name);
    if (job === undefined || record === undefined || summary === undefined) return undefined;
    const base = {
      ...summary,
      passedData: record.passedData ?? null,
      timeout: record.timeout ?? null,
      factoryStartup: record.startup.factoryStartup ?? null,
      addons: record.startup.addons ?? [],
      // Where its time went (queue wait, attempts, their phases), once it has ended.
      timings: shownTimings(job.timings),
    };
    const log = record.log;
    const images = record.outputDir === undefined ? [] : await listOutputs(record.outputDir);
    // Every image is listed and served (streamed); only those of a sensible size are shown as thumbnails.
    const outputs = images.map((image) => image.name);
    const thumbnails = images.filter((image) => image.bytes <= THUMBNAIL_MAX_BYTES).map((image) => image.name);
    if (job.state === "COMPLETED") {
      const result = await job.result();
      const dataBlocks = result.dataBlocks === null ? null : Object.fromEntries(
        Object.entries(result.dataBlocks).filter(([key, value]) => key !== "path" && (value as unknown[]).length > 0),
      );
      return {
        ...base,
        startedAt: result.startedAt.toISOString(),
        endedAt: result.endedAt.toISOString(),
        durationMs: result.durationMs,
        timings: shownTimings(job.timings ?? result.timings),
        pythonData: result.pythonData,
        dataBlocks,
        outputs,
        thumbnails,
        log,
      };
    }
    if (job.state === "DROPPED") {
      const error = await job.result().then(() => undefined, (error: JobDroppedError) => error);
      const report = error === undefined ? null : [
        `Dropped after ${error.attempts} attempt${error.attempts === 1 ? "" : "s"} (${error.reason})${where(error)}: ` +
        error.summary,
        ...(error.pythonError === null ? [] : [error.pythonError.text.trimEnd()]),
        ...(error.stderrTail.trim() === "" ? [] : [`--- stderr (last lines) ---\n${error.stderrTail.trimEnd()}`]),
      ].join("\n");
      return {
        ...base,
        reason: error?.reason ?? null,
        exitCode: error?.exitCode ?? null,
        signal: error?.signal ?? null,
        report: report === null ? null : redact(report),
        outputs,
        thumbnails,
        log,
      };
    }
    return { ...base, outputs, thumbnails, log };
  }
}
