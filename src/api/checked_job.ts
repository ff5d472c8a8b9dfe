/**
 * The one check of a job's options: `JobManager.addJob` turns `AddJobOptions` into a {@linkcode CheckedJob} here,
 * with the manager's defaults applied, once, whichever backend then runs it.
 */

import {
  checkAddons,
  checkArgs,
  checkBlendFile,
  type CheckedDataBlocks,
  checkFactoryStartup,
  checkFile,
  checkFileTarget,
  checkOutputDir,
  checkPassedData,
  checkPassedDataBlocks,
  checkProgressSource,
  checkTimeout,
} from "../_validate.ts";
import { basename } from "node:path";
import { InvalidJobError } from "../errors.ts";
import { JOB_FILES } from "../local/job/dir.ts";
import { checkTags } from "../nats/_protocol.ts";
import type { AddJobOptions, ProgressSource } from "./options.ts";
import type { TraceCarrier } from "../_telemetry.ts";

/** A job whose every option is checked and defaulted: what a backend runs. */
export interface CheckedJob {
  readonly name: string;
  /** The script's absolute path. */
  readonly script: string;
  readonly blendFile: string | null;
  readonly timeoutMs: number;
  readonly args: readonly string[];
  /** A file the job's lines are appended to, on this host. */
  readonly logFile: string | null;
  /** Where the job's outputs go on this host, or `null` for the backend's own folder. */
  readonly outputDir: string | null;
  readonly factoryStartup: boolean;
  readonly addons: readonly string[];
  readonly progress: ProgressSource;
  /** `passedData` as JSON text (checked to round-trip). */
  readonly passedDataJson: string;
  readonly passedDataBlocks: CheckedDataBlocks | null;
  /** Tags a worker must have (NATS); empty for local Blenders, which have every tag there is. */
  readonly requires: readonly string[];
  /** This job's attempts, or `null` for the manager's `maxAttempts` (as it is when an attempt ends). */
  readonly maxAttempts: number | null;
  /** Files copied into the job's folder before its script runs (absolute paths, base names unique). */
  readonly inputs: readonly string[];
  /** Higher first among queued jobs. */
  readonly priority: number;
  /** Over NATS, whether a missing file the .blend uses fails the job (`"fail"`) or warns. */
  readonly missingFiles: "warn" | "fail";
  /**
   * A folder where the job's files were laid out at the paths they had on another machine (a NATS worker's): an
   * absolute path in the .blend that is missing here is looked up under it. `null` for a job that runs where it was
   * added.
   */
  readonly pathRoot: string | null;
  /** Warnings for the job's output, said before its script runs. */
  readonly notes: readonly string[];
  /** When the job was added (epoch milliseconds): its timings start there. */
  readonly addedMs: number;
  /** The job's span, parent of its attempts' spans; `null` without telemetry (or when the caller traces itself). */
  readonly trace: TraceCarrier | null;
}

/** The manager's defaults a job's options fall back on. */
export interface JobDefaults {
  readonly timeoutMs: number;
  readonly outputDir: string | null;
  readonly factoryStartup: boolean;
  readonly addons: readonly string[];
  readonly progress: ProgressSource;
}

/** Check every option of a job named `name` (already checked) against `defaults`; throws `InvalidJobError`. */
export function checkJob(
  name: string,
  options: AddJobOptions,
  defaults: JobDefaults,
): CheckedJob {
  const script = checkFile("script", options.script);
  const blendFile = options.blendFile === undefined ? null : checkBlendFile(options.blendFile);
  const timeoutMs = options.timeout === undefined ? defaults.timeoutMs : checkTimeout(options.timeout);
  const args = options.args === undefined ? [] : checkArgs(options.args);
  const logFile = options.logFile === undefined ? null : checkFileTarget(options.logFile);
  const outputDir = options.outputDir === undefined
    ? defaults.outputDir
    : checkOutputDir("Cannot add job", options.outputDir);
  const factoryStartup = options.factoryStartup === undefined
    ? defaults.factoryStartup
    : checkFactoryStartup(options.factoryStartup);
  const addons = [
    ...new Set([...defaults.addons, ...(options.addons === undefined ? [] : checkAddons(options.addons))]),
  ];
  const progress = options.progress === undefined
    ? defaults.progress
    : checkProgressSource("Cannot add job", options.progress);
  const passedDataJson = checkPassedData(options.passedData);
  const passedDataBlocks = options.passedDataBlocks === undefined
    ? null
    : checkPassedDataBlocks(options.passedDataBlocks);
  const requires = options.requires === undefined ? [] : checkTags("Cannot add job", "requires", options.requires);
  return {
    name,
    script,
    blendFile,
    timeoutMs,
    args,
    logFile,
    outputDir,
    factoryStartup,
    addons,
    progress,
    passedDataJson,
    passedDataBlocks,
    requires,
    maxAttempts: options.maxAttempts === undefined ? null : checkMaxAttempts(options.maxAttempts),
    inputs: options.inputs === undefined ? [] : checkInputs(options.inputs),
    missingFiles: options.missingFiles === undefined ? "warn" : checkMissingFiles(options.missingFiles),
    priority: options.priority === undefined ? 0 : checkPriority(options.priority),
    pathRoot: null,
    notes: [],
    addedMs: Date.now(),
    trace: null,
  };
}

/** A priority: an integer of at most 9 digits, either sign. */
export function checkPriority(value: unknown, what = "Cannot add job"): number {
  if (typeof value !== "number" || !Number.isInteger(value) || Math.abs(value) > 999_999_999) {
    throw new InvalidJobError(
      "priority",
      `${what} as 'priority' must be an integer from -999999999 to 999999999: current value is ${String(value)}`,
    );
  }
  return value;
}

function checkMissingFiles(value: unknown): "warn" | "fail" {
  if (value !== "warn" && value !== "fail") {
    throw new InvalidJobError(
      "missingFiles",
      `Cannot add job as 'missingFiles' must be "warn" or "fail": current value is ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function checkMaxAttempts(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new InvalidJobError(
      "maxAttempts",
      `Cannot add job as 'maxAttempts' must be an integer >= 1: current value is ${String(value)}`,
    );
  }
  return value;
}

/** At most this many inputs per job. */
const MAX_INPUTS = 1000;

/** The job folder's own names (and Blender's backup of the working copy): no input may take one. */
const FOLDER_NAMES = new Set<string>([...Object.values(JOB_FILES), `${JOB_FILES.work}1`]);

function checkInputs(value: unknown): string[] {
  if (!Array.isArray(value) || value.length > MAX_INPUTS) {
    throw new InvalidJobError("inputs", `Cannot add job as 'inputs' must be an array of at most ${MAX_INPUTS} files`);
  }
  const names = new Map<string, string>();
  return value.map((input) => {
    const path = checkFile("inputs", input);
    const name = basename(path);
    if (FOLDER_NAMES.has(name) || name.startsWith(".") || name.endsWith(".tmp")) {
      throw new InvalidJobError(
        "inputs",
        `Cannot add job as the input ${path} has a name the job's folder keeps for itself`,
      );
    }
    const other = names.get(name);
    if (other !== undefined) {
      throw new InvalidJobError("inputs", `Cannot add job as the inputs ${other} and ${path} have the same name`);
    }
    names.set(name, path);
    return path;
  });
}
