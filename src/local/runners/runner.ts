/**
 * Runners: the one seam between supervision and execution. The supervisor
 * starts *attempts* through a {@linkcode Runner}; it never sees a process or
 * a command line. Each runner owns how Blender is reached: `fork.ts` (a
 * child of a warm zygote per attempt, the default), `process.ts` (a fresh
 * Blender per attempt) and `pool.ts` (warm workers); NATS is a backend of
 * its own (`src/nats/`), not a runner. Nothing here assumes a local process.
 *
 * @module
 */

import type { JobOutput } from "../job/outputs.ts";
import type { DropReason, PythonError } from "../../errors.ts";
import type { DataBlocks, JsonObject } from "../../types.ts";
import type { PhaseTiming } from "../../timings.ts";

/** Everything one attempt of one job needs. */
export interface AttemptPlan {
  /** The job's name. */
  readonly name: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** The job directory (see `local/job/dir.ts`). */
  readonly jobDir: string;
  /** The `spec.json` text. */
  readonly specJson: string;
  /** The .blend file the job opens, or `null`. */
  readonly blendFile: string | null;
  /** Whether Blender starts with `--factory-startup` (else as a plain `blender -b`, with the user's settings). */
  readonly factoryStartup: boolean;
  /** Milliseconds; 0 means none. The Job actor enforces it with `kill("timed-out")`; a remote runner may too. */
  readonly timeoutMs: number;
  /** Characters of each output stream to keep for the report. */
  readonly outputLimit: number;
  /** The largest `result.json`, in bytes, the host reads. */
  readonly resultLimit: number;
  /** The progress already published for the job: progress events only go above it. */
  readonly progress: number;
  /** Where a completed job's data-block library is kept, and its outputs when it has no `outputDir`. */
  readonly resultsDir: string;
  /** Where a completed job's outputs go (relative paths kept), or `null` for a folder in `resultsDir`. */
  readonly outputDir: string | null;
  /** `keepFiles`: the job directory keeps everything (spec, result) for debugging. */
  readonly keepFiles?: boolean;
  /** Files copied into the job directory, under their own names, before Blender starts. */
  readonly inputs?: readonly string[];
}

/** Why the supervisor ends an attempt. */
export type KillReason = "killed" | "timed-out";

/** What an attempt reports, in order: `started` (once, unless it never started), then output and progress, then `ended` once. */
export type AttemptEvent =
  | {
    readonly type: "started";
    /** What really runs the attempt, for logs and reports (a command line, a worker and the job's id on it…). */
    readonly ranOn: string;
  }
  | { readonly type: "output"; readonly stream: "stdout" | "stderr"; readonly line: string }
  | { readonly type: "progress"; readonly value: number }
  | { readonly type: "ended"; readonly outcome: AttemptOutcome };

/** The facts of an attempt, whatever its end. */
export interface AttemptFacts {
  readonly attempt: number;
  /** What really ran (the `ranOn` of `started`), or what was tried. */
  readonly ranOn: string;
  readonly startedAt: Date;
  readonly endedAt: Date;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** The kept tail of stdout, each line ending in `\n`. */
  readonly stdout: string;
  /** The kept tail of stderr. */
  readonly stderr: string;
  /** The Blender and Python versions the attempt ran in (`"5.2.2 LTS (Python 3.14.0)"`), once its runtime said so. */
  readonly blender?: string;
  /** Its phases (see `JobPhase`), once its files were read. */
  readonly phases?: readonly PhaseTiming[];
}

/** What an attempt came to. */
export type AttemptOutcome =
  | {
    readonly kind: "completed";
    readonly pythonData: JsonObject;
    readonly dataBlocks: DataBlocks | null;
    /** The files the job wrote, where they were kept. */
    readonly outputs: readonly JobOutput[];
    /** The folder of `resultsDir` that holds them, removed with the job's result; `null` with an `outputDir`. */
    readonly outputsFolder: string | null;
    readonly facts: AttemptFacts;
  }
  | {
    readonly kind: "failed";
    readonly reason: DropReason;
    readonly summary: string;
    readonly pythonError: PythonError | null;
    /** The attempt failed before the job's own code could run, through no fault of the job: counts towards restart intensity. */
    readonly startFailure: boolean;
    /**
     * Why the attempt died through no act of its own, when it did (its fork-mode zygote died under it): the
     * supervisor retries it once without counting the attempt.
     */
    readonly collateral?: string;
    readonly facts: AttemptFacts;
    readonly cause?: unknown;
  };

/** One running attempt. */
export interface AttemptHandle {
  /** The attempt's events; ends after `ended`. Must be read to the end (or `return()`ed). */
  readonly events: AsyncIterable<AttemptEvent>;
  /** Ask the attempt to end; the `ended` event follows. Never throws; repeated calls keep the first reason. */
  kill(reason: KillReason): void;
  /** Settles once everything the attempt started is gone. Never rejects. */
  readonly gone: Promise<void>;
}

/** A warm Blender (a fork-mode zygote, a pool worker) that exited while idle, when nobody asked it to. */
export interface WarmExit {
  readonly kind: "zygote" | "pool worker";
  readonly id: string;
  /** Its startup flavour (`--factory-startup` or not): what a restart starts. */
  readonly factoryStartup: boolean;
  /** How it ended: `code 1`, `SIGKILL`. */
  readonly how: string;
}

/** What starts attempts. */
export interface Runner {
  /** Start one attempt of `plan`. Never throws: a failure to start is an `ended` event. */
  start(plan: AttemptPlan): AttemptHandle;
  /**
   * Tell `listener` of each warm Blender that exits while idle, unasked. The runner does not restart it: its parent
   * decides (`restartWarm`), under the restart intensity. A runner without warm Blenders never calls it.
   */
  onWarmExit(listener: (exit: WarmExit) => void): void;
  /** Start a warm Blender of this flavour now: the parent's restart of one that exited. */
  restartWarm(factoryStartup: boolean): void;
  /** Stop whatever the runner keeps between attempts (after every attempt is gone). */
  close(): Promise<void>;
}
