/** What a worker records of a completed job: its result, with its files uploaded to the object store. */

import { basename, isAbsolute, join, relative } from "node:path";
import type { DataBlockInfo, JobResult, JsonObject } from "../types.ts";
import type { Uploader } from "./_files.ts";
import { encode, type FileRef, RECORD_INLINE_LIMIT, type RecordedOutput, type RecordedResult } from "./_protocol.ts";

/** Where a worker's result is made: its uploader, a folder for spilled data, and its id. */
export interface ResultPlace {
  readonly uploader: Uploader;
  /** A folder for the temporary file of data too large for a record. */
  readonly workRoot: string;
  readonly worker: string;
}

/** Upload the job's outputs (kept in `folder` by the local backend); paths relative to it. */
async function recordOutputs(uploader: Uploader, result: JobResult, folder: string): Promise<RecordedOutput[]> {
  const recorded: RecordedOutput[] = [];
  for (const { path, bytes, kind } of result.outputs) {
    const inside = relative(folder, path);
    if (inside.startsWith("..") || isAbsolute(inside)) continue; // Never a file outside the job's own folder.
    recorded.push({ file: await uploader.put(path, basename(path)), path: inside, bytes, kind });
  }
  return recorded;
}

/** The data blocks' manifest and library. */
async function recordDataBlocks(uploader: Uploader, result: JobResult): Promise<RecordedResult["dataBlocks"]> {
  if (result.dataBlocks === null) return null;
  const { path, ...collections } = result.dataBlocks;
  const blocks: Record<string, DataBlockInfo[]> = {};
  for (const [collection, list] of Object.entries(collections)) {
    if (list.length > 0) {
      blocks[collection] = list.map((block) => ({ name: block.name, type: block.type, returned: block.returned }));
    }
  }
  return { file: await uploader.put(path, "data_blocks.blend"), blocks };
}

/** The record's `result` for `result`, its attempt `attempt`, outputs from `folder`. */
export async function recordResult(
  place: ResultPlace,
  result: JobResult,
  attempt: number,
  folder: string,
): Promise<RecordedResult> {
  const { uploader } = place;
  const dataBlocks = await recordDataBlocks(uploader, result);
  let inline = { pythonData: result.pythonData as JsonObject, stdout: result.stdout, stderr: result.stderr };
  let outputs = await recordOutputs(uploader, result, folder);
  let overflow: FileRef | undefined;
  let outputsFile: FileRef | undefined;
  const tooLarge = (value: unknown) =>
    JSON.stringify(value).length > RECORD_INLINE_LIMIT / 4 && encode(value).length > RECORD_INLINE_LIMIT;
  // Too large for a KV value (the server's max payload): the data, or the outputs' list (a job that wrote more than
  // about 1,500 files), goes through the object store.
  if (tooLarge(inline)) {
    overflow = await spill(place, inline, "result.json");
    inline = { pythonData: {}, stdout: "", stderr: "" };
  }
  if (tooLarge(outputs)) {
    outputsFile = await spill(place, outputs, "outputs.json");
    outputs = [];
  }
  return {
    ...inline,
    ...(overflow === undefined ? {} : { overflow }),
    ...(outputs.length === 0 ? {} : { outputs }),
    ...(outputsFile === undefined ? {} : { outputsFile }),
    dataBlocks,
    attempts: attempt,
    startedAt: result.startedAt.toISOString(),
    endedAt: result.endedAt.toISOString(),
    durationMs: result.durationMs,
    commandLine: result.commandLine,
    worker: place.worker,
  };
}

/** `value` as a JSON file in the object store. */
async function spill(place: ResultPlace, value: unknown, name: string): Promise<FileRef> {
  const file = join(place.workRoot, `${name}-${crypto.randomUUID()}`);
  await Deno.writeTextFile(file, JSON.stringify(value));
  try {
    return await place.uploader.put(file, name);
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}
