/**
 * The process runner: one fresh `blender --background` per attempt, started
 * with `Deno.Command` in a process group of its own, so a kill reaches
 * Blender and everything it started. Output is read as it comes (never a
 * pipe left unread), line by line.
 */

import { lineSplitter, shellQuote } from "../job/lines.ts";
import { blenderArgs, LocalAttempt } from "./_local_attempt.ts";
import { firstFallbackNotice } from "./_cgroup.ts";
import { type ExitStatus, OUTPUT_GRACE_MS, type ProcessGroup, spawnDetached } from "./_process_group.ts";
import type { AttemptHandle, AttemptPlan, Runner } from "./runner.ts";

/** What the process runner needs. */
export interface ProcessRunnerOptions {
  /** The Blender executable. */
  readonly blender: string;
  /** The runtime's entry script (`__main__.py`). */
  readonly runtimeEntry: string;
}

/** Runs each attempt in a Blender of its own. */
export class ProcessRunner implements Runner {
  readonly #options: ProcessRunnerOptions;

  constructor(options: ProcessRunnerOptions) {
    this.#options = options;
  }

  /** Process mode keeps no Blender between attempts. */
  onWarmExit(): void {}

  /** Process mode keeps no Blender between attempts. */
  restartWarm(): void {}

  start(plan: AttemptPlan): AttemptHandle {
    const args = blenderArgs(
      this.#options.runtimeEntry,
      plan.blendFile,
      ["--job-dir", plan.jobDir],
      plan.factoryStartup,
    );
    const attempt = new LocalAttempt(plan, shellQuote([this.#options.blender, ...args]));
    let group: ProcessGroup | undefined;
    const gone = (async () => {
      try {
        await attempt.prepare();
      } catch (startError) {
        return await attempt.end({ status: null, startError });
      }
      await runPrepared(attempt, this.#options.blender, args, plan.outputLimit, (started) => group = started);
    })().catch(() => {});
    return {
      events: attempt.events,
      kill(reason) {
        attempt.killReason ??= reason;
        group?.kill("SIGKILL");
      },
      gone,
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Run a prepared attempt in a fresh Blender started with `args`, to its end;
 * `onGroup` gets the process group as soon as it runs (for kills). Fork mode
 * falls back to this where forking is unsafe.
 */
export async function runPrepared(
  attempt: LocalAttempt,
  blender: string,
  args: readonly string[],
  maxLine: number,
  onGroup: (group: ProcessGroup) => void,
): Promise<void> {
  if (attempt.killReason !== undefined) return await attempt.end({ status: null });
  let group: ProcessGroup;
  try {
    group = spawnDetached(blender, args);
  } catch (startError) {
    return await attempt.end({ status: null, startError, blenderWouldNotStart: true });
  }
  onGroup(group);
  attempt.started(shellQuote([blender, ...args]));
  void group.unjailed.then((why) => {
    if (why !== null && firstFallbackNotice()) {
      attempt.line("stderr", `bgproc: ${why}; a process this job leaves in a session of its own may outlive it`);
    }
  });
  const status = await readUntilExit(group, attempt, maxLine);
  await group.closeStdin();
  await attempt.end({ status });
}

/** Pass the group's output to `attempt` line by line until Blender is reaped and its pipes are closed. */
async function readUntilExit(group: ProcessGroup, attempt: LocalAttempt, maxLine: number): Promise<ExitStatus> {
  /** Stops reading when a process Blender left behind (in a session of its own) holds the pipes open. */
  const giveUp = new AbortController();
  const read = async (stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr") => {
    const lines = stream.pipeThrough(new TextDecoderStream(), { signal: giveUp.signal }).pipeThrough(
      lineSplitter(maxLine),
    );
    try {
      for await (const line of lines) attempt.line(name, line);
    } catch (error) {
      if (!giveUp.signal.aborted) throw error;
    }
  };
  let grace: ReturnType<typeof setTimeout> | undefined;
  void group.status.then(() => grace = setTimeout(() => giveUp.abort(), OUTPUT_GRACE_MS));
  try {
    await Promise.all([read(group.stdout, "stdout"), read(group.stderr, "stderr")]);
  } catch {
    group.kill("SIGKILL");
  }
  const status = await group.status;
  clearTimeout(grace);
  return status;
}
