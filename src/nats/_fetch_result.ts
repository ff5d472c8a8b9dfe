/**
 * A completed cluster job's result on this host: its data-block library and spilled output fetched from the object
 * store, and its outputs placed as a local job's are (`keepOutputs`: relative paths kept, links never followed, a
 * clash with `outputDir` sends them to this host's own folder for the job, with a note in `stderr`).
 */

import { join, normalize, relative, sep } from "node:path";
import { type JobOutput, keepOutputs } from "../local/job/outputs.ts";
import { DATA_BLOCK_COLLECTIONS, type DataBlocks, type JobResult } from "../types.ts";
import type { FileCache } from "./_files.ts";
import type { JobRecord, RecordedOutput } from "./_protocol.ts";

/** Fetch `record`'s result; its outputs go to `outputDir`, else (or when they clash with it) to `ownFolder`. */
export async function fetchResult(
  record: JobRecord,
  outputDir: string | null,
  ownFolder: string,
  downloads: FileCache,
  workRoot: string,
): Promise<JobResult> {
  const result = record.result;
  if (result === null) throw new Error(`Job '${record.name}' completed without a result`);
  let dataBlocks: DataBlocks | null = null;
  if (result.dataBlocks !== null) {
    const path = await downloads.get(result.dataBlocks.file);
    const collections = Object.fromEntries(
      DATA_BLOCK_COLLECTIONS.map((collection) => [collection, result.dataBlocks?.blocks[collection] ?? []]),
    );
    dataBlocks = { path, ...collections } as unknown as DataBlocks;
  }
  let inline = { pythonData: result.pythonData, stdout: result.stdout, stderr: result.stderr };
  if (result.overflow !== undefined) {
    inline = JSON.parse(await Deno.readTextFile(await downloads.get(result.overflow))) as typeof inline;
  }
  let outputs: JobOutput[] = [];
  if ((result.outputs ?? []).length > 0) {
    const staging = await Deno.makeTempDir({ dir: workRoot, prefix: "staging-" });
    try {
      const notes = await stage(staging, result.outputs ?? [], downloads);
      const targets = outputDir === null
        ? { into: ownFolder, fallback: null }
        : { into: outputDir, fallback: ownFolder };
      const kept = await keepOutputs(staging, targets, []);
      outputs = kept.outputs;
      if (kept.note !== undefined) notes.push(kept.note);
      if (notes.length > 0) inline = { ...inline, stderr: `${inline.stderr}${notes.join("\n")}\n` };
    } finally {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
    }
  }
  return {
    name: record.name,
    pythonData: inline.pythonData,
    dataBlocks,
    outputs,
    stdout: inline.stdout,
    stderr: inline.stderr,
    attempts: result.attempts,
    startedAt: new Date(result.startedAt),
    endedAt: new Date(result.endedAt),
    durationMs: result.durationMs,
    commandLine: result.commandLine,
  };
}

/** Copy each recorded output into `staging` at its relative path; a path a record cannot mean is left, with a note. */
async function stage(staging: string, recorded: readonly RecordedOutput[], downloads: FileCache): Promise<string[]> {
  const notes: string[] = [];
  for (const { file, path } of recorded) {
    const target = join(staging, normalize(String(path)));
    const inside = relative(staging, target);
    // A record can say anything: an absolute path, `..`, or the folder itself.
    if (inside === "" || inside.startsWith(`..${sep}`) || inside === ".." || normalize(String(path)).startsWith(sep)) {
      notes.push(`bgproc: the output ${JSON.stringify(path)} of this job's record is not a relative path; it was left`);
      continue;
    }
    await Deno.mkdir(join(target, ".."), { recursive: true });
    await Deno.copyFile(await downloads.get(file), target);
  }
  return notes;
}
