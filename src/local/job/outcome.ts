/**
 * Reading an attempt's end from its job directory: the result, the Python
 * error, or what Blender's exit says, classified into an `AttemptOutcome`.
 */

import { basename, join } from "node:path";
import type { AttemptFacts, AttemptOutcome, AttemptPlan, KillReason } from "../runners/runner.ts";
import type { DropReason, PythonError } from "../../errors.ts";
import { DATA_BLOCK_COLLECTIONS, type DataBlockInfo, type DataBlocks, type JsonObject } from "../../types.ts";
import { readBlendFile } from "../../blend/read.ts";
import { changedDir, type DirIdentity, FileTooLargeError, JOB_FILES, reachedRuntime, readJobJson } from "./dir.ts";
import { keepOutputs } from "./outputs.ts";
import { attemptPhases, withPhase } from "./phases.ts";

/** How an attempt on a local Blender ended, before its files are read. */
export interface LocalEnd {
  readonly facts: AttemptFacts;
  readonly killReason: KillReason | undefined;
  /** Why the attempt could not be started at all, if it could not. */
  readonly startError: unknown;
  /** Whether `startError` came from starting Blender itself (not from preparing the job directory). */
  readonly blenderWouldNotStart: boolean;
  /** The files Blender said it saved. */
  readonly saved: readonly string[];
  /** The job directory as it was prepared, when it was. */
  readonly dir?: DirIdentity | undefined;
}

/** Classify a local attempt's end from its facts and its job directory. */
export async function classifyEnd(plan: AttemptPlan, end: LocalEnd): Promise<AttemptOutcome> {
  const { killReason, startError } = end;
  const runtime = await runtimeInfo(plan.jobDir);
  let facts = runtime.blender === undefined ? end.facts : { ...end.facts, blender: runtime.blender };
  const timed = (reported?: unknown) =>
    attemptPhases(facts.startedAt.getTime(), facts.endedAt.getTime(), runtime.at, reported);
  facts = { ...facts, phases: timed() }; // `start` at least, whatever comes of the job's files.
  const ranBlender = facts.exitCode !== null || facts.signal !== null;
  const runtimeReached = await reachedRuntime(plan.jobDir);
  // Blender itself failing to start: it would not run, or died before bgproc's runtime with nothing of the
  // job's (a .blend file) to blame. Failures of the job's own inputs do not count.
  const startFailure = killReason === undefined && !runtimeReached &&
    (end.blenderWouldNotStart || (ranBlender && plan.blendFile === null));
  const failed = (reason: DropReason, summary: string, pythonError: PythonError | null = null, cause?: unknown) =>
    ({
      kind: "failed",
      reason,
      summary,
      pythonError,
      startFailure,
      facts,
      ...(cause === undefined ? {} : { cause }),
    }) as const;

  if (startError !== undefined && !ranBlender) {
    return failed("start-failed", `the attempt could not be started: ${errorMessage(startError)}`, null, startError);
  }
  const swapped = end.dir === undefined ? null : await changedDir(plan.jobDir, end.dir);
  if (swapped !== null) return failed("crashed", `${swapped}; nothing in it was read or kept`);
  let error: unknown;
  let result: unknown;
  try {
    error = await readJobJson(join(plan.jobDir, JOB_FILES.error), plan.resultLimit);
    result = await readJobJson(join(plan.jobDir, JOB_FILES.result), plan.resultLimit);
    // Read once and kept in memory: with one user id for all jobs, another job could read them from the folder.
    if (plan.keepFiles !== true) {
      for (const file of [JOB_FILES.error, JOB_FILES.result]) {
        await Deno.remove(join(plan.jobDir, file)).catch(() => {});
      }
    }
  } catch (readError) {
    if (readError instanceof FileTooLargeError) {
      return failed(
        "result-too-large",
        `the job's result is ${readError.size} bytes, more than the manager's resultLimit of ${readError.limit}`,
        null,
        readError,
      );
    }
    return failed("crashed", `the job's files could not be read: ${errorMessage(readError)}`, null, readError);
  }
  const reported = (result as { phases?: unknown } | undefined)?.phases ??
    (error as { phases?: unknown } | undefined)?.phases;
  facts = { ...facts, phases: timed(reported) };
  if (facts.exitCode === 0 && isResult(result) && error === undefined) {
    // A kill or timeout that came after the job finished does not undo its result.
    return await keepResult(plan, end, facts, result, failed);
  }
  if (killReason === "timed-out") {
    return failed("timed-out", `Blender was killed after the ${plan.timeoutMs} ms timeout`);
  }
  if (killReason === "killed") return failed("killed", "the job was killed");
  if (isPythonError(error)) {
    const where = ORIGINS[error.origin] ?? "bgproc's runtime failed:";
    const savedBy = error.origin === "blend-file" && plan.blendFile !== null ? await savedByNote(plan.blendFile) : "";
    return failed("error", `${where} ${error.type}: ${error.message.trimEnd()}${savedBy}`, error);
  }
  if (facts.signal !== null) return failed("crashed", `Blender was ended by ${facts.signal}`);
  if (plan.blendFile !== null && !runtimeReached) {
    const unreadable = await unreadableBlendFile(plan.blendFile, facts);
    if (unreadable !== undefined) return failed("error", unreadable);
  }
  if (facts.exitCode === 0) return failed("crashed", "Blender exited with code 0 but wrote no result");
  return failed("crashed", `Blender exited with code ${facts.exitCode} without a result`);
}

/** How a completed attempt's failure to keep its result is told (`classifyEnd`'s `failed`). */
type Failed = (reason: DropReason, summary: string, pythonError: null, cause: unknown) => AttemptOutcome;

/** Keep a completed attempt's data blocks and outputs (timed as its `outputs` phase): its outcome. */
async function keepResult(
  plan: AttemptPlan,
  end: LocalEnd,
  facts: AttemptFacts,
  result: { pythonData: JsonObject; dataBlocks?: unknown },
  failed: Failed,
): Promise<AttemptOutcome> {
  let dataBlocks: DataBlocks | null;
  try {
    dataBlocks = await keepDataBlocks(plan, result.dataBlocks);
  } catch (keepError) {
    return failed("crashed", `the job's data blocks could not be kept: ${errorMessage(keepError)}`, null, keepError);
  }
  const ownFolder = join(plan.resultsDir, `${basename(plan.jobDir)}-outputs`);
  try {
    const targets = plan.outputDir === null
      ? { into: ownFolder, fallback: null }
      : { into: plan.outputDir, fallback: ownFolder };
    const keepStart = Date.now();
    const kept = await keepOutputs(plan.jobDir, targets, end.saved, end.dir);
    const outputs = { phase: "outputs", startMs: keepStart, endMs: Date.now() } as const;
    const timed = { ...facts, phases: withPhase(facts.phases ?? [], outputs) };
    const noted = kept.note === undefined ? timed : { ...timed, stderr: `${facts.stderr}${kept.note}\n` };
    const inOwnFolder = plan.outputDir === null || kept.intoFallback;
    const folder = kept.outputs.length === 0 || !inOwnFolder ? null : ownFolder;
    return {
      kind: "completed",
      pythonData: result.pythonData,
      dataBlocks,
      outputs: kept.outputs,
      outputsFolder: folder,
      facts: noted,
    };
  } catch (keepError) {
    if (dataBlocks !== null) await Deno.remove(dataBlocks.path).catch(() => {});
    return failed("crashed", `the job's outputs could not be kept: ${errorMessage(keepError)}`, null, keepError);
  }
}

const ORIGINS: Readonly<Record<string, string>> = {
  script: "the script raised",
  result: "the script's results cannot be sent back:",
  "data-blocks": "the passed data blocks could not be loaded:",
  addons: "an add-on could not be enabled:",
  "blend-file": "Blender could not open the job's .blend file:",
  runtime: "bgproc's runtime failed:",
};

function isPythonError(value: unknown): value is PythonError {
  return typeof value === "object" && value !== null && typeof (value as PythonError).type === "string" &&
    Array.isArray((value as PythonError).frames);
}

/** Move the job's library out of its directory (removed when the job ends) and group its manifest. */
async function keepDataBlocks(plan: AttemptPlan, manifest: unknown): Promise<DataBlocks | null> {
  if (manifest === null || manifest === undefined) return null;
  const { path, blocks } = manifest as {
    path: string;
    blocks: { collection: string; name: string; type: string; returned?: unknown }[];
  };
  await Deno.mkdir(plan.resultsDir, { recursive: true });
  const kept = join(plan.resultsDir, `${basename(plan.jobDir)}.blend`);
  await Deno.rename(path, kept);
  const grouped: Record<string, DataBlockInfo[]> = {};
  for (const collection of DATA_BLOCK_COLLECTIONS) grouped[collection] = [];
  for (const block of blocks) {
    (grouped[block.collection] ??= []).push({ name: block.name, type: block.type, returned: block.returned === true });
  }
  return { path: kept, ...grouped } as DataBlocks;
}

function isResult(value: unknown): value is { pythonData: JsonObject; dataBlocks?: unknown } {
  const data = (value as { pythonData?: unknown } | undefined)?.pythonData;
  return typeof data === "object" && data !== null && !Array.isArray(data);
}

/**
 * Why Blender could not open the job's .blend file, when its output says it could not (it then quits before
 * bgproc's runtime runs), with the version that saved the file: a Blender older than a file's cannot read it.
 */
async function unreadableBlendFile(blendFile: string, facts: AttemptFacts): Promise<string | undefined> {
  // 3.4: "Error: Failed to read blend file '…', not a blend file"; 4.3: "Error: Cannot read blend file '…',
  // incomplete header, …"; 5.2: "00:00.319  reports | ERROR Failed to read blend file '…': Missing DNA block".
  const said = /(?:^Error: |\| ERROR )((?:Failed to read|Cannot read) blend file .*?)\.?$/m.exec(
    `${facts.stdout}\n${facts.stderr}`,
  );
  if (said === null) return undefined;
  return `${ORIGINS["blend-file"]} ${said[1]}.${await savedByNote(blendFile)}`;
}

/** " The file was saved by Blender 5.2: …" when bgproc can read which Blender saved it; else "". */
async function savedByNote(blendFile: string): Promise<string> {
  try {
    const { version } = await readBlendFile(blendFile);
    return ` The file was saved by Blender ${version}: a Blender older than the file cannot open it.`;
  } catch {
    return ""; // Not a .blend file bgproc can read either: Blender's own words say enough.
  }
}

/** An error's message, or the value as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * What the runtime wrote to `runtime.json`: the Blender and Python versions (`"5.2.2 LTS (Python 3.14.0)"`) and
 * when it took the job (`at`, epoch milliseconds).
 */
async function runtimeInfo(jobDir: string): Promise<{ blender?: string; at?: unknown }> {
  try {
    const runtime = await readJobJson(join(jobDir, JOB_FILES.runtime), 64 * 1024) as
      | Record<string, unknown>
      | undefined;
    if (typeof runtime?.blender !== "string" || runtime.blender === "") return { at: runtime?.at };
    const blender = typeof runtime.python === "string"
      ? `${runtime.blender} (Python ${runtime.python})`
      : runtime.blender;
    return { blender, at: runtime.at };
  } catch {
    return {}; // Unreadable or tampered with: the report goes without it.
  }
}
