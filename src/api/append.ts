/**
 * How `appendDataBlocks` runs as a job on any backend. Where jobs see this host's files (local Blenders) the job
 * appends into the target in place. Where they do not (a cluster), the library and the target travel as the job's
 * inputs, the changed target comes back as its output, and it replaces the target here.
 */

import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import type { CheckedDataBlocks } from "../_validate.ts";
import { InvalidJobError } from "../errors.ts";
import type { JobResult, JsonObject } from "../types.ts";
import type { AddJobOptions, AppendDataBlocksOptions } from "./options.ts";

/** An append job's options, and what is done with its result. */
export interface AppendPlan {
  /** The job's options but its name and script. */
  readonly job: Omit<AddJobOptions, "name" | "script">;
  /** Put the appended target in place (a remote job's output); throws when it did not come back. */
  finish(result: JobResult): Promise<void>;
  /** Remove what the plan made here. */
  cleanup(): Promise<void>;
}

const LIBRARY = "library.blend";
const TARGET = "target.blend";

/** Plan appending `selection` into `into` (checked); `remote` when jobs do not see this host's files. */
export function planAppend(
  selection: CheckedDataBlocks,
  into: string,
  options: AppendDataBlocksOptions,
  remote: { readonly stagingRoot: string } | null,
): AppendPlan {
  const data = {
    blocks: selection.blocks as JsonObject,
    overwrite: options.overwrite ?? false,
    link: options.link ?? false,
  };
  const common = {
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
  };
  if (remote === null) {
    return {
      job: { passedData: { library: selection.path, into, ...data }, ...common },
      finish: () => Promise.resolve(),
      cleanup: () => Promise.resolve(),
    };
  }
  if (data.link) {
    throw new InvalidJobError(
      "link",
      "Cannot link blocks into a file over NATS: the library would be the worker's copy; append them (link: false)",
    );
  }
  const staging = Deno.makeTempDirSync({ dir: remote.stagingRoot, prefix: "append-" });
  const inputs = [linkOrCopy(selection.path, join(staging, LIBRARY))];
  if (existsSync(into)) inputs.push(linkOrCopy(into, join(staging, TARGET)));
  return {
    job: {
      passedData: { library: LIBRARY, into: TARGET, in_job_folder: true, ...data },
      inputs,
      outputDir: join(staging, "out"),
      ...common,
    },
    async finish(result) {
      const made = result.outputs.find((output) => basename(output.path) === TARGET);
      if (made === undefined) throw new Error(`Cannot append into ${into} as the append job's file did not come back`);
      await replaceFile(made.path, into);
    },
    cleanup: () => Deno.remove(staging, { recursive: true }).catch(() => {}),
  };
}

/** `to` as a hard link to `from` (no copy of a large file), or a copy across file systems; returns `to`. */
function linkOrCopy(from: string, to: string): string {
  try {
    Deno.linkSync(from, to);
  } catch {
    Deno.copyFileSync(from, to);
  }
  return to;
}

/** Put `from` at `to` in one step (a reader sees the old file or the new one), across file systems too. */
async function replaceFile(from: string, to: string): Promise<void> {
  const temporary = `${to}.bgproc-${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.copyFile(from, temporary);
    await Deno.rename(temporary, to);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}
