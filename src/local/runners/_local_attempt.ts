/**
 * What the process, pool and fork runners share: one attempt on a Blender on this
 * machine, reporting through a job directory. Prepares the directory, keeps
 * bounded output tails, and at the end classifies the attempt from its exit
 * and its files. (Its progress file is the job actor's to watch.)
 */

import { type DirIdentity, prepareJobDir } from "../job/dir.ts";
import { LineTail } from "../job/lines.ts";
import { classifyEnd } from "../job/outcome.ts";
import { MAX_OUTPUTS, savedPath } from "../job/outputs.ts";
import { Channel } from "../../channel.ts";
import type { AttemptEvent, AttemptPlan, KillReason } from "./runner.ts";
import type { ExitStatus } from "./_process_group.ts";

/** How the attempt's Blender ended, as its runner saw it. */
export interface LocalExit {
  /** Blender's exit, or `null` when it never ran. */
  readonly status: ExitStatus | null;
  /** Why the attempt could not start, if it could not. */
  readonly startError?: unknown;
  /** Whether `startError` means Blender itself would not start. */
  readonly blenderWouldNotStart?: boolean;
  /** Why Blender died through no act of the job's (its zygote died), if it did. */
  readonly collateral?: string;
}

/** One attempt's bookkeeping; its runner feeds it lines and the exit. */
export class LocalAttempt {
  /** The attempt's event stream. */
  readonly events: Channel<AttemptEvent> = new Channel();
  /** The first reason the attempt was asked to end for. */
  killReason: KillReason | undefined;
  readonly #plan: AttemptPlan;
  readonly #stdout: LineTail;
  readonly #stderr: LineTail;
  #ranOn: string;
  #startedAt = new Date();
  /** The files Blender said it saved (`Saved: '…'`): outputs when they are in the folder the outputs go to. */
  readonly #saved: string[] = [];
  /** The job directory as prepared: a job that swaps it for another folder or a link gets nothing read from it. */
  #dir: DirIdentity | undefined;

  constructor(plan: AttemptPlan, ranOn: string) {
    this.#plan = plan;
    this.#ranOn = ranOn;
    this.#stdout = new LineTail(plan.outputLimit);
    this.#stderr = new LineTail(plan.outputLimit);
  }

  /** Make the job directory ready. */
  async prepare(): Promise<void> {
    this.#dir = await prepareJobDir(this.#plan.jobDir, this.#plan.specJson, this.#plan.inputs ?? []);
  }

  /** Blender runs the attempt now; `ranOn` says what runs it. */
  started(ranOn: string): void {
    this.#ranOn = ranOn;
    this.#startedAt = new Date();
    this.events.send({ type: "started", ranOn });
  }

  /** One line of the attempt's output. */
  line(stream: "stdout" | "stderr", line: string): void {
    (stream === "stdout" ? this.#stdout : this.#stderr).push(line);
    const saved = line.includes("Saved: '") ? savedPath(line) : null;
    if (saved !== null && this.#saved.length < MAX_OUTPUTS) this.#saved.push(saved);
    this.events.send({ type: "output", stream, line });
  }

  /** The attempt is over: classify, send `ended`, end the stream. */
  async end(exit: LocalExit): Promise<void> {
    const { status } = exit;
    const outcome = await classifyEnd(this.#plan, {
      facts: {
        attempt: this.#plan.attempt,
        ranOn: this.#ranOn,
        startedAt: this.#startedAt,
        endedAt: new Date(),
        exitCode: status === null || status.signal !== null ? null : status.code,
        signal: status?.signal ?? null,
        stdout: this.#stdout.text(),
        stderr: this.#stderr.text(),
      },
      killReason: this.killReason,
      startError: exit.startError,
      blenderWouldNotStart: exit.blenderWouldNotStart ?? false,
      saved: this.#saved,
      dir: this.#dir,
    });
    const collateral = exit.collateral !== undefined && outcome.kind === "failed" && outcome.reason === "crashed";
    this.events.send({
      type: "ended",
      outcome: collateral
        ? { ...outcome, collateral: exit.collateral, summary: `${outcome.summary} (${exit.collateral})` }
        : outcome,
    });
    this.events.close();
  }
}

/**
 * Blender's arguments to run bgproc's runtime in the background, then `tail` for the runtime. With
 * `factoryStartup` false Blender starts as a plain `blender -b` does: with the user's preferences, the add-ons
 * they enable and their scripts folder.
 */
export function blenderArgs(
  runtimeEntry: string,
  blendFile: string | null,
  tail: readonly string[],
  factoryStartup: boolean,
): string[] {
  return [
    "--background",
    ...(factoryStartup ? ["--factory-startup"] : []),
    "-noaudio",
    ...(blendFile === null ? [] : [blendFile]),
    "--python-exit-code",
    "1",
    "--python",
    runtimeEntry,
    "--",
    ...tail,
  ];
}

/** The startup flavour's name, for logs and the keys of warm Blenders: `"factory"` or `"user"`. */
export function startupFlavour(factoryStartup: boolean): "factory" | "user" {
  return factoryStartup ? "factory" : "user";
}
