/**
 * A completed cluster job's result on this host: its data-block library and spilled output fetched from the object
 * store, and its outputs placed as a local job's are (`keepOutputs`: relative paths kept, links never followed, a
 * clash with `outputDir` sends them to this host's own folder for the job, with a note in `stderr`).
 */

import { recordTimings } from "./_timings.ts";
import { join, normalize, relative, sep } from "node:path";
import { type JobOutput, keepOutputs, MAX_OUTPUTS } from "../local/job/outputs.ts";
import { DATA_BLOCK_COLLECTIONS, type DataBlocks, type JobResult } from "../types.ts";
import type { FileCache } from "./_files.ts";
import { type JobRecord, OUTPUTS_FILE_LIMIT, type RecordedOutput } from "./_protocol.ts";

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
  let recorded = result.outputs ?? [];
  if (result.outputsFile !== undefined) {
    if (result.outputsFile.size > OUTPUTS_FILE_LIMIT) {
      throw new Error(`Job '${record.name}' lists its outputs in a file of more than ${OUTPUTS_FILE_LIMIT} bytes`);
    }
    const listed: unknown = JSON.parse(await Deno.readTextFile(await downloads.get(result.outputsFile)));
    if (!Array.isArray(listed)) throw new Error(`Job '${record.name}' lists its outputs in a file that is no list`);
    recorded = listed as RecordedOutput[];
  }
  let outputs: JobOutput[] = [];
  if (recorded.length > 0) {
    const staging = await Deno.makeTempDir({ dir: workRoot, prefix: "staging-" });
    try {
      // As a local job keeps: at most MAX_OUTPUTS (a worker never records more; a record that lists more is forged).
      const notes = recorded.length > MAX_OUTPUTS
        ? [`bgproc: the job's record lists ${recorded.length} outputs; the first ${MAX_OUTPUTS} were fetched`]
        : [];
      notes.push(...await stage(staging, recorded.slice(0, MAX_OUTPUTS), downloads));
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
    timings: recordTimings(record),
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
