/** The flags every job-running command takes for its JobManager, and the output flags of run and batch. */

import type { JobManagerOptions } from "../job_manager.ts";
import { type Flags, type FlagSpecs, positiveNumber } from "./_args.ts";
import { UsageError } from "./_errors.ts";
import { userPath } from "./_paths.ts";

/** `--workers`, `--attempts`, `--mode`, `--blender`. */
export const MANAGER_FLAGS: FlagSpecs = {
  workers: { type: "string", value: "N", help: "run up to N jobs at once (default: 2)" },
  attempts: { type: "string", value: "N", help: "start a failing job up to N times (default: 1)" },
  mode: { type: "string", value: "MODE", help: "process (one Blender per job, default) or pool (warm Blenders)" },
  blender: { type: "string", value: "PATH", help: "the Blender executable (default: $BLENDER, else blender on PATH)" },
};

/** `--json`, `--verbose`/`--logs`, `--log-file`. */
export const OUTPUT_FLAGS: FlagSpecs = {
  json: { type: "boolean", help: "print the result as JSON on stdout" },
  verbose: { type: "boolean", short: "v", aliases: ["logs"], help: "stream each job's output, prefixed by its name" },
  "log-file": { type: "string", value: "FILE", help: "append each job's output, prefixed by its name, to FILE" },
};

/** The manager's options from the flags. */
export function managerOptions(flags: Flags): JobManagerOptions {
  const mode = flags.mode;
  if (mode !== undefined && mode !== "process" && mode !== "pool") {
    throw new UsageError(`--mode must be 'process' or 'pool', not '${mode}'`);
  }
  const workers = positiveNumber(flags, "workers", true);
  const attempts = positiveNumber(flags, "attempts", true);
  const blender = flags.blender;
  return {
    ...(workers === undefined ? {} : { maxWorkers: workers }),
    ...(attempts === undefined ? {} : { maxAttempts: attempts }),
    ...(mode === undefined ? {} : { mode }),
    // A relative path with a slash is the user's file; a bare name is looked up on PATH.
    ...(typeof blender === "string" ? { blender: blender.includes("/") ? userPath(blender) : blender } : {}),
  };
}
