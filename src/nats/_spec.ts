/** A checked job as the worker takes it: its files in the object store, its options in the record. */

import { join } from "node:path";
import type { CheckedJob } from "../api/checked_job.ts";
import type { JsonObject } from "../types.ts";
import type { Uploader } from "./_files.ts";
import { encode, type FileRef, type JobSpec, type Layout, RECORD_INLINE_LIMIT } from "./_protocol.ts";
import { BlenderNotFoundError, InvalidJobError } from "../errors.ts";
import type { DependencyCache } from "../deps/cache.ts";

/** The most missing files named in a job's warnings. */
const MAX_NOTES = 50;

/** The largest layout kept in a record; a larger one travels as a file. */
const LAYOUT_INLINE_LIMIT = 64 * 1024;

/**
 * Upload `job`'s files (once per content) and return its spec; `passedData` too large for a record is a file. And
 * `stored`: whether the store has the script, asked while the host writes the job's record (only its queue message
 * waits for it) when this host has seen the script in the store before; a script it has not is in the store before
 * this returns.
 */
export async function jobSpec(
  job: CheckedJob,
  id: string,
  workRoot: string,
  uploader: Uploader,
  retry: JobSpec["retry"],
  dependencies: DependencyCache | null,
): Promise<{ spec: JobSpec; stored: Promise<void> }> {
  const travel = await layoutOf(job, id, workRoot, uploader, dependencies);
  let passedData = JSON.parse(job.passedDataJson) as JsonObject;
  let passedDataFile: FileRef | undefined;
  if (job.passedDataJson.length > RECORD_INLINE_LIMIT / 4 && encode(passedData).length > RECORD_INLINE_LIMIT) {
    // Too large for a KV value (the server's max payload): it goes through the object store.
    const file = join(workRoot, `passed-${id}.json`);
    await Deno.writeTextFile(file, job.passedDataJson);
    try {
      passedDataFile = await uploader.put(file, "passed_data.json");
    } finally {
      await Deno.remove(file).catch(() => {});
    }
    passedData = {};
  }
  const script = await uploader.reference(job.script);
  script.stored.catch(() => {}); // Awaited: below, or by the caller before the job is queued.
  if (!script.known) await script.stored;
  try {
    const blocks = job.passedDataBlocks;
    const spec: JobSpec = {
      script: script.ref,
      blendFile: job.blendFile === null ? null : await uploader.put(job.blendFile),
      passedData,
      ...(passedDataFile === undefined ? {} : { passedDataFile }),
      args: job.args,
      timeoutMs: job.timeoutMs,
      passedDataBlocks: blocks === null ? null : {
        file: await uploader.put(blocks.path),
        blocks: Object.fromEntries(Object.entries(blocks.blocks).map(([k, v]) => [k, [...v]])),
      },
      requires: job.requires,
      retry,
      runOptions: { factoryStartup: job.factoryStartup, addons: job.addons, progress: job.progress },
      ...(job.inputs.length === 0 ? {} : { inputs: await uploadAll(uploader, job.inputs) }),
      ...travel,
    };
    return { spec, stored: script.stored };
  } catch (error) {
    await script.stored.catch(() => {}); // Nothing of the job's goes on after it failed.
    throw error;
  }
}

/**
 * What of the job's .blend travels besides the file itself: every file it uses (uploaded once per content), where
 * each was, and warnings for those missing. `missingFiles: "fail"` refuses a job with a missing file.
 */
async function layoutOf(
  job: CheckedJob,
  id: string,
  workRoot: string,
  uploader: Uploader,
  dependencies: DependencyCache | null,
): Promise<Pick<JobSpec, "layout" | "layoutFile" | "notes">> {
  if (job.blendFile === null || dependencies === null) return {};
  let deps;
  try {
    deps = await dependencies.of(job.blendFile, job.script);
  } catch (error) {
    if (job.missingFiles === "fail") {
      throw new InvalidJobError(
        "missingFiles",
        `Cannot run job '${job.name}' as the files its .blend uses could not be listed: ${
          error instanceof Error ? error.message.split("\n")[0] : String(error)
        }`,
        { cause: error },
      );
    }
    // The job still runs, with its .blend alone: where the file cannot be opened, the worker says so as its error.
    const note = error instanceof BlenderNotFoundError
      ? "this job's host has no Blender to list the files its .blend uses: only the .blend travels"
      : `the files this job's .blend uses could not be listed (${
        error instanceof Error ? error.message.split("\n")[0] : String(error)
      }): only the .blend travels`;
    return { notes: [note] };
  }
  if (deps.missing.length > 0 && job.missingFiles === "fail") {
    throw new InvalidJobError(
      "missingFiles",
      `Cannot run job '${job.name}' as files its .blend uses are missing: ${
        deps.missing.map((file) => file.path).join(", ")
      }`,
    );
  }
  const notes = deps.missing.slice(0, MAX_NOTES).map((file) =>
    `a file the job's .blend uses is missing: ${file.path} (${file.kind}, "${file.written}")`
  );
  if (deps.missing.length > MAX_NOTES) notes.push(`and ${deps.missing.length - MAX_NOTES} more missing files`);
  const files: { path: string; file: FileRef }[] = [];
  for (const file of deps.files) if (file.exists) files.push({ path: file.path, file: await uploader.put(file.path) });
  const layout: Layout = { blendPath: job.blendFile, scriptPath: job.script, files };
  const text = JSON.stringify(layout);
  if (text.length <= LAYOUT_INLINE_LIMIT) return { layout, ...(notes.length === 0 ? {} : { notes }) };
  const path = join(workRoot, `layout-${id}.json`);
  await Deno.writeTextFile(path, text);
  try {
    return { layoutFile: await uploader.put(path, "layout.json"), ...(notes.length === 0 ? {} : { notes }) };
  } finally {
    await Deno.remove(path).catch(() => {});
  }
}

/** Upload each file (once per content), in order. */
async function uploadAll(uploader: Uploader, paths: readonly string[]): Promise<FileRef[]> {
  const refs: FileRef[] = [];
  for (const path of paths) refs.push(await uploader.put(path));
  return refs;
}
