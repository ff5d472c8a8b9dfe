/**
 * Finding a .blend's dependencies on a local Blender of its own, for a manager whose jobs run elsewhere (a NATS host):
 * one process-mode job of `deps_job.py`, in a work root that goes with it.
 */

import { join } from "node:path";
import { tmpdir } from "node:os";
import { checkJob } from "../api/checked_job.ts";
import { checkPermissions, resolveOptions } from "../api/options.ts";
import { findBlender } from "../blender.ts";
import { LocalJobs } from "../local/jobs.ts";
import { type Dependencies, readDependencies } from "./dependencies.ts";

/** What the finder needs: where Blender is, and where its work root may go. */
export interface FindOptions {
  readonly blender?: string;
  readonly workDir?: string;
  /** Milliseconds; 0 for none. @default {60000} */
  readonly timeoutMs?: number;
  /** Kills the listing when aborted. */
  readonly signal?: AbortSignal;
}

/** How long a listing may take by default: opening a .blend, not rendering it. */
const LISTING_TIMEOUT_MS = 60_000;

/** The dependencies of `blendFile` (and of `script`'s imports), both checked absolute paths. */
export async function findDependencies(
  blendFile: string,
  script: string | null,
  options: FindOptions = {},
): Promise<Dependencies> {
  const resolved = resolveOptions({
    mode: "process",
    maxWorkers: 1,
    maxAttempts: 1,
    ...(options.blender === undefined ? {} : { blender: options.blender }),
    ...(options.workDir === undefined ? {} : { workDir: options.workDir }),
  });
  const blender = findBlender(resolved.blender === undefined ? {} : { blender: resolved.blender });
  checkPermissions(blender, resolved.workDir ?? tmpdir());
  const jobs = new LocalJobs(resolved, blender);
  try {
    const job = jobs.run(checkJob("dependencies", {
      script: join(jobs.backend.jobScripts, "deps_job.py"),
      passedData: { blend: blendFile, script },
      timeout: options.timeoutMs ?? LISTING_TIMEOUT_MS,
    }, {
      timeoutMs: 0,
      outputDir: null,
      factoryStartup: true,
      addons: [],
      progress: "script",
    }));
    const kill = () => void job.kill().catch(() => {});
    options.signal?.addEventListener("abort", kill, { once: true });
    if (options.signal?.aborted) kill();
    try {
      return readDependencies((await job.result()).pythonData, script);
    } finally {
      options.signal?.removeEventListener("abort", kill);
    }
  } finally {
    await jobs.close();
  }
}
