/** A checked job as the worker takes it: its files in the object store, its options in the record. */

import { join } from "node:path";
import type { CheckedJob } from "../api/checked_job.ts";
import type { JsonObject } from "../types.ts";
import type { Uploader } from "./_files.ts";
import { encode, type FileRef, type JobSpec, RECORD_INLINE_LIMIT } from "./_protocol.ts";

/** Upload `job`'s files (once per content) and return its spec; `passedData` too large for a record is a file. */
export async function jobSpec(
  job: CheckedJob,
  id: string,
  workRoot: string,
  uploader: Uploader,
  retry: JobSpec["retry"],
): Promise<JobSpec> {
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
  const blocks = job.passedDataBlocks;
  return {
    script: await uploader.put(job.script),
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
  };
}

/** Upload each file (once per content), in order. */
async function uploadAll(uploader: Uploader, paths: readonly string[]): Promise<FileRef[]> {
  const refs: FileRef[] = [];
  for (const path of paths) refs.push(await uploader.put(path));
  return refs;
}
