/**
 * `JobManager`'s options: the one table of defaults, and their validation,
 * done in full before the manager does anything on disk.
 */

import {
  addonsProblem,
  checkInteger,
  checkNumber,
  checkOutputDir,
  checkProgressSource,
  checkRetryReasons,
  MAX_DELAY_MS,
} from "../_validate.ts";
import type { JobManagerOptions, ProgressSource } from "./job_manager.ts";
import { type RestartIntensity, RETRYABLE_REASONS, type RetryPolicy } from "../local/policy.ts";

/** Every option's default. */
export const DEFAULTS = {
  maxWorkers: 2,
  maxAttempts: 1,
  timeout: 0,
  keepFiles: false,
  outputLimit: 1 << 20,
  resultLimit: 64 * 1024 * 1024,
  mode: "process",
  maxJobsPerWorker: 100,
  maxWorkerMemoryMiB: 2048,
  prewarm: false,
  factoryStartup: true,
  addons: [],
  progress: "auto",
  retry: { on: RETRYABLE_REASONS, delayMs: 250, factor: 2, maxDelayMs: 30_000 },
  restartIntensity: { maxFailures: 5, periodMs: 10_000 },
} as const;

/** The options, checked, with their defaults filled in. */
export interface ResolvedOptions {
  readonly maxWorkers: number;
  readonly maxAttempts: number;
  readonly timeout: number;
  readonly blender: string | undefined;
  readonly workDir: string | undefined;
  readonly keepFiles: boolean;
  readonly outputLimit: number;
  readonly resultLimit: number;
  readonly mode: "process" | "pool" | "fork";
  readonly maxJobsPerWorker: number;
  readonly maxWorkerMemoryMiB: number;
  readonly prewarm: boolean;
  readonly factoryStartup: boolean;
  readonly addons: readonly string[];
  readonly progress: ProgressSource;
  readonly outputDir: string | null;
  readonly retry: RetryPolicy;
  readonly intensity: RestartIntensity;
}

const WHAT = "Cannot make JobManager";

/** Check every option; throws `TypeError`/`RangeError` naming the first bad one. */
export function resolveOptions(options: JobManagerOptions): ResolvedOptions {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${WHAT} as its options must be an object: current value is ${String(options)}`);
  }
  const mode = options.mode ?? DEFAULTS.mode;
  if (mode !== "process" && mode !== "pool" && mode !== "fork") {
    throw new RangeError(`${WHAT} as 'mode' must be "process", "pool" or "fork": current value is ${String(mode)}`);
  }
  const retry = options.retry ?? {};
  const intensity = options.restartIntensity ?? {};
  return {
    maxWorkers: checkInteger(WHAT, "maxWorkers", options.maxWorkers ?? DEFAULTS.maxWorkers, 1),
    maxAttempts: checkInteger(WHAT, "maxAttempts", options.maxAttempts ?? DEFAULTS.maxAttempts, 1),
    timeout: checkDelay("timeout", options.timeout ?? DEFAULTS.timeout),
    blender: checkOptionalString("blender", options.blender),
    workDir: checkOptionalString("workDir", options.workDir),
    keepFiles: checkBoolean("keepFiles", options.keepFiles ?? DEFAULTS.keepFiles),
    outputLimit: checkInteger(WHAT, "outputLimit", options.outputLimit ?? DEFAULTS.outputLimit, 1),
    resultLimit: checkInteger(WHAT, "resultLimit", options.resultLimit ?? DEFAULTS.resultLimit, 1),
    mode,
    maxJobsPerWorker: checkInteger(WHAT, "maxJobsPerWorker", options.maxJobsPerWorker ?? DEFAULTS.maxJobsPerWorker, 1),
    maxWorkerMemoryMiB: checkNumber(
      WHAT,
      "maxWorkerMemoryMiB",
      options.maxWorkerMemoryMiB ?? DEFAULTS.maxWorkerMemoryMiB,
      1,
    ),
    prewarm: checkBoolean("prewarm", options.prewarm ?? DEFAULTS.prewarm),
    factoryStartup: checkBoolean("factoryStartup", options.factoryStartup ?? DEFAULTS.factoryStartup),
    addons: checkManagerAddons(options.addons ?? DEFAULTS.addons),
    progress: checkProgressSource(WHAT, options.progress ?? DEFAULTS.progress, RangeError),
    outputDir: options.outputDir === undefined ? null : checkOutputDir(WHAT, options.outputDir, TypeError),
    retry: {
      on: checkRetryReasons(retry.on ?? DEFAULTS.retry.on),
      initialDelayMs: checkNumber(WHAT, "retry.delayMs", retry.delayMs ?? DEFAULTS.retry.delayMs, 0),
      factor: checkNumber(WHAT, "retry.factor", retry.factor ?? DEFAULTS.retry.factor, 1),
      maxDelayMs: Math.min(
        MAX_DELAY_MS,
        checkNumber(WHAT, "retry.maxDelayMs", retry.maxDelayMs ?? DEFAULTS.retry.maxDelayMs, 0),
      ),
    },
    intensity: {
      maxFailures: checkInteger(
        WHAT,
        "restartIntensity.maxFailures",
        intensity.maxFailures ?? DEFAULTS.restartIntensity.maxFailures,
        0,
      ),
      periodMs: Math.min(
        MAX_DELAY_MS,
        checkNumber(WHAT, "restartIntensity.periodMs", intensity.periodMs ?? DEFAULTS.restartIntensity.periodMs, 0),
      ),
    },
  };
}

function checkDelay(field: string, value: number): number {
  if (typeof value !== "number" || !(value >= 0 && value <= MAX_DELAY_MS)) {
    throw new RangeError(`${WHAT} as '${field}' must be from 0 to ${MAX_DELAY_MS} ms: current value is ${value}`);
  }
  return value;
}

function checkOptionalString(field: string, value: unknown): string | undefined {
  if (value === undefined || (typeof value === "string" && value !== "")) return value;
  throw new TypeError(`${WHAT} as '${field}' must be a non-empty string: current value is ${String(value)}`);
}

function checkManagerAddons(value: unknown): string[] {
  const names: string[] = [];
  const problem = addonsProblem(value, names);
  if (problem !== undefined) throw new TypeError(`${WHAT} as 'addons' ${problem}`);
  return names;
}

function checkBoolean(field: string, value: unknown): boolean {
  if (typeof value === "boolean") return value;
  throw new TypeError(`${WHAT} as '${field}' must be a boolean: current value is ${String(value)}`);
}

/**
 * Throw `Deno.errors.NotCapable` with one line naming the missing flag,
 * unless the permissions the manager needs are granted.
 */
export function checkPermissions(mode: "process" | "pool" | "fork", blender: string, workDir: string): void {
  const needed: [Deno.PermissionDescriptor, string, string][] = [
    [{ name: "read", path: workDir }, "--allow-read", `to read its work root in ${workDir}`],
    [{ name: "write", path: workDir }, "--allow-write", `to write its work root in ${workDir}`],
    [{ name: "run", command: blender }, "--allow-run", `to start Blender (${blender})`],
  ];
  if (mode !== "process") needed.push([{ name: "net" }, "--allow-net", `for ${mode} mode's Unix socket`]);
  for (const [descriptor, flag, why] of needed) {
    if (Deno.permissions.querySync(descriptor).state !== "granted") {
      throw new Deno.errors.NotCapable(`bgproc's JobManager needs ${flag} ${why}; run Deno with ${flag}`);
    }
  }
}
