/**
 * The Job actor: owns one attempt of one job and its one Blender process.
 * Prepares the job directory, starts Blender, streams its output line by
 * line into bounded tails, enforces the timeout, kills on request (the whole
 * process group), and once the process is reaped and its output drained,
 * classifies the end and tells its parent.
 */

import { basename, join } from "node:path";
import { type ActorRef, spawnActor, unreachable } from "./_actor.ts";
import { lineSplitter, LineTail, shellQuote } from "./_lines.ts";
import { LogFile } from "./_log_file.ts";
import { startProgressWatcher } from "./_progress_watcher.ts";
import type { ExitStatus, SpawnedProcess, Spawner } from "./_spawner.ts";
import type { DropReason, PythonError } from "./errors.ts";
import { DATA_BLOCK_COLLECTIONS, type DataBlockInfo, type DataBlocks, type JsonObject } from "./types.ts";

/** The job-directory files the Python runtime writes and a new attempt must not inherit. */
/** How long the output pipes may stay open after Blender is reaped (held by a process that left its group). */
const OUTPUT_GRACE_MS = 1_000;

const ATTEMPT_FILES = ["runtime.json", "progress", "result.json", "error.json", "work.blend"];

/** Everything one attempt needs. */
export interface AttemptPlan {
  readonly name: string;
  readonly attempt: number;
  readonly jobDir: string;
  /** The spec.json text; written on the first attempt. */
  readonly specJson: string;
  readonly blender: string;
  readonly runtimeEntry: string;
  readonly blendFile: string | null;
  /** Milliseconds; 0 means none. */
  readonly timeoutMs: number;
  /** Characters of each output stream to keep. */
  readonly outputLimit: number;
  /** A file to append the attempt's output to, or `null`. */
  readonly logFile: string | null;
  /** The progress already published for this job. */
  readonly progress: number;
  /** Where a completed job's data-block library is kept: `<resultsDir>/<name>.blend`. */
  readonly resultsDir: string;
  readonly spawner: Spawner;
}

/** What one attempt came to. */
export type AttemptOutcome =
  | {
    readonly kind: "completed";
    readonly pythonData: JsonObject;
    readonly dataBlocks: DataBlocks | null;
    readonly run: AttemptRun;
  }
  | {
    readonly kind: "failed";
    readonly reason: DropReason;
    readonly summary: string;
    readonly pythonError: PythonError | null;
    readonly run: AttemptRun;
    readonly cause?: unknown;
  };

/** The facts of an attempt, whatever its end. */
export interface AttemptRun {
  readonly attempt: number;
  readonly commandLine: string;
  readonly startedAt: Date;
  readonly endedAt: Date;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** Whether Blender got as far as bgproc's runtime (it wrote runtime.json). */
  readonly reachedRuntime: boolean;
  /** Whether the spawn itself failed (a bad executable), as opposed to preparing the attempt. */
  readonly spawnFailed: boolean;
  readonly stdout: LineTail;
  readonly stderr: LineTail;
}

/** What the Job actor reports to its parent. */
export interface AttemptEvents {
  started(pid: number, commandLine: string, startedAt: Date): void;
  progress(value: number): void;
  output(stream: "stdout" | "stderr", line: string): void;
  ended(outcome: AttemptOutcome): void;
}

/** Messages of the Job actor. */
export type JobMessage =
  | { readonly type: "start" }
  | { readonly type: "kill"; readonly reason: "killed" | "timed-out" }
  | {
    readonly type: "exited";
    readonly status: ExitStatus | null;
    readonly spawnError?: unknown;
    /** Whether the process itself could not be started (not the job directory or log file before it). */
    readonly spawnFailed?: boolean;
  };

/** Start the Job actor for `plan`; it begins on its `start` message. */
export function startJobActor(plan: AttemptPlan, events: AttemptEvents): ActorRef<JobMessage> {
  const stdout = new LineTail(plan.outputLimit);
  const stderr = new LineTail(plan.outputLimit);
  const args = blenderArgs(plan);
  const commandLine = shellQuote([plan.blender, ...args]);
  let process: SpawnedProcess | undefined;
  let killReason: "killed" | "timed-out" | undefined;
  let startedAt = new Date();
  let watcher: ReturnType<typeof startProgressWatcher> | undefined;
  let log: LogFile | undefined;
  /** Cleared when the attempt ends, so a long timeout does not outlive a short job. */
  let timeout: ReturnType<typeof setTimeout> | undefined;

  /** Cancels the output pumps when a process Blender left behind (in a session of its own) holds the pipes open. */
  const drain = new AbortController();
  const pump = async (stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr", tail: LineTail) => {
    const lines = stream.pipeThrough(new TextDecoderStream(), { signal: drain.signal })
      .pipeThrough(lineSplitter(plan.outputLimit));
    try {
      for await (const line of lines) {
        tail.push(line);
        log?.write(line);
        events.output(name, line);
      }
    } catch (error) {
      if (!drain.signal.aborted) throw error;
    }
  };

  const start = async () => {
    await prepareJobDir(plan);
    if (plan.logFile !== null) {
      log = await LogFile.open(plan.logFile);
      log.write(`--- bgproc: job '${plan.name}', attempt ${plan.attempt}: ${commandLine}`);
    }
    watcher = startProgressWatcher({ dir: plan.jobDir, initial: plan.progress, publish: events.progress });
    startedAt = new Date();
    try {
      process = await plan.spawner.spawn(plan.blender, args, { jobDir: plan.jobDir });
    } catch (spawnError) {
      self.tell({ type: "exited", status: null, spawnError, spawnFailed: true });
      return;
    }
    const running = process;
    if (plan.timeoutMs > 0) {
      timeout = setTimeout(() => self.tell({ type: "kill", reason: "timed-out" }), plan.timeoutMs);
    }
    events.started(running.pid, commandLine, startedAt);
    let grace: ReturnType<typeof setTimeout> | undefined;
    void running.status.then(() => {
      // Blender is reaped (and what it left in its group killed): give the pipes a moment to close.
      grace = setTimeout(() => drain.abort(), OUTPUT_GRACE_MS);
    });
    void Promise.all([
      running.status,
      pump(running.stdout, "stdout", stdout),
      pump(running.stderr, "stderr", stderr),
    ]).then(
      ([status]) => self.tell({ type: "exited", status }),
      (error) => {
        running.kill("SIGKILL");
        return running.status.then((status) => self.tell({ type: "exited", status, spawnError: error }));
      },
    ).finally(() => clearTimeout(grace));
  };

  const finish = async (status: ExitStatus | null, spawnError: unknown, spawnFailed: boolean) => {
    clearTimeout(timeout);
    await process?.closeStdin();
    await watcher?.ask<void>((reply) => ({ type: "stop", reply }));
    const logError = await log?.close().then(() => undefined, (error: unknown) => error);
    const reachedRuntime = await Deno.stat(join(plan.jobDir, "runtime.json")).then(() => true, () => false);
    const run: AttemptRun = {
      attempt: plan.attempt,
      reachedRuntime,
      spawnFailed,
      commandLine,
      startedAt,
      endedAt: new Date(),
      exitCode: status === null || status.signal !== null ? null : status.code,
      signal: status?.signal ?? null,
      stdout,
      stderr,
    };
    const outcome = await classify(plan, run, killReason, spawnError);
    if (logError !== undefined) run.stderr.push(`bgproc: could not write the log file ${plan.logFile}: ${logError}`);
    events.ended(outcome);
  };

  const self = spawnActor<JobMessage>(`job:${plan.name}#${plan.attempt}`, {
    async receive(message) {
      switch (message.type) {
        case "start":
          try {
            await start();
          } catch (error) {
            self.tell({ type: "exited", status: null, spawnError: error });
          }
          return;
        case "kill":
          if (killReason === undefined) killReason = message.reason;
          process?.kill("SIGKILL");
          return;
        case "exited":
          await finish(message.status, message.spawnError, message.spawnFailed ?? false);
          return;
        default:
          unreachable(message);
      }
    },
  });
  return self;
}

/** Blender's arguments for `plan`: background, factory settings, our runtime, the job directory. */
export function blenderArgs(plan: Pick<AttemptPlan, "blendFile" | "runtimeEntry" | "jobDir">): string[] {
  return [
    "--background",
    "--factory-startup",
    "-noaudio",
    ...(plan.blendFile === null ? [] : [plan.blendFile]),
    "--python-exit-code",
    "1",
    "--python",
    plan.runtimeEntry,
    "--",
    "--job-dir",
    plan.jobDir,
  ];
}

async function prepareJobDir(plan: AttemptPlan): Promise<void> {
  await Deno.mkdir(plan.jobDir, { recursive: true });
  await Promise.all(ATTEMPT_FILES.map((file) => Deno.remove(join(plan.jobDir, file)).catch(() => {})));
  if (plan.attempt === 1) {
    const tmp = join(plan.jobDir, "spec.json.tmp");
    await Deno.writeTextFile(tmp, plan.specJson);
    await Deno.rename(tmp, join(plan.jobDir, "spec.json"));
  }
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function classify(
  plan: AttemptPlan,
  run: AttemptRun,
  killReason: "killed" | "timed-out" | undefined,
  spawnError: unknown,
): Promise<AttemptOutcome> {
  const failed = (reason: DropReason, summary: string, pythonError: PythonError | null = null, cause?: unknown) =>
    ({ kind: "failed", reason, summary, pythonError, run, ...(cause === undefined ? {} : { cause }) }) as const;

  if (spawnError !== undefined && run.exitCode === null && run.signal === null) {
    return failed("start-failed", `the attempt could not be started: ${errorMessage(spawnError)}`, null, spawnError);
  }
  let error: unknown;
  let result: unknown;
  try {
    error = await readJson(join(plan.jobDir, "error.json"));
    result = await readJson(join(plan.jobDir, "result.json"));
  } catch (readError) {
    return failed("crashed", `the job's files could not be read: ${errorMessage(readError)}`, null, readError);
  }
  if (run.exitCode === 0 && isResult(result) && error === undefined) {
    // A kill or timeout that came after the job finished does not undo its result.
    let dataBlocks: DataBlocks | null;
    try {
      dataBlocks = await keepDataBlocks(plan, result.dataBlocks);
    } catch (keepError) {
      return failed("crashed", `the job's data blocks could not be kept: ${errorMessage(keepError)}`, null, keepError);
    }
    return { kind: "completed", pythonData: result.pythonData, dataBlocks, run };
  }
  if (killReason === "timed-out") {
    return failed("timed-out", `Blender was killed after the ${plan.timeoutMs} ms timeout`);
  }
  if (killReason === "killed") return failed("killed", "the job was killed");
  if (isPythonError(error)) {
    const where = ORIGINS[error.origin] ?? "bgproc's runtime failed:";
    return failed("error", `${where} ${error.type}: ${error.message}`, error);
  }
  if (run.signal !== null) return failed("crashed", `Blender was ended by ${run.signal}`);
  if (run.exitCode === 0) return failed("crashed", "Blender exited with code 0 but wrote no result");
  return failed("crashed", `Blender exited with code ${run.exitCode} without a result`);
}

const ORIGINS: Readonly<Record<string, string>> = {
  script: "the script raised",
  result: "the script's results cannot be sent back:",
  "data-blocks": "the passed data blocks could not be loaded:",
  runtime: "bgproc's runtime failed:",
};

function isPythonError(value: unknown): value is PythonError {
  return typeof value === "object" && value !== null && typeof (value as PythonError).type === "string" &&
    Array.isArray((value as PythonError).frames);
}

/** Move the job's library out of its directory (removed when the job ends) and group its manifest. */
async function keepDataBlocks(plan: AttemptPlan, manifest: unknown): Promise<DataBlocks | null> {
  if (manifest === null || manifest === undefined) return null;
  const { path, blocks } = manifest as { path: string; blocks: { collection: string; name: string; type: string }[] };
  await Deno.mkdir(plan.resultsDir, { recursive: true });
  const kept = join(plan.resultsDir, `${basename(plan.jobDir)}.blend`);
  await Deno.rename(path, kept);
  const grouped: Record<string, DataBlockInfo[]> = {};
  for (const collection of DATA_BLOCK_COLLECTIONS) grouped[collection] = [];
  for (const block of blocks) (grouped[block.collection] ??= []).push({ name: block.name, type: block.type });
  return { path: kept, ...grouped } as DataBlocks;
}

function isResult(value: unknown): value is { pythonData: JsonObject; dataBlocks?: unknown } {
  const data = (value as { pythonData?: unknown } | undefined)?.pythonData;
  return typeof data === "object" && data !== null && !Array.isArray(data);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
