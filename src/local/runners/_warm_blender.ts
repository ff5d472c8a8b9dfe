/** What the fork and pool runners share about a warm Blender: its process, its flavour, its greeting, its end. */

import { shellQuote } from "../job/lines.ts";
import { type ProcessGroup, spawnDetached } from "./_process_group.ts";
import { meters, safely } from "../../_telemetry.ts";

/** A Blender kept running between attempts (a fork-mode zygote, a pool worker), started at once. */
export class WarmBlender<Ready> {
  readonly id: string;
  /** Started with `--factory-startup`: it takes only jobs that ask for the same. */
  readonly factoryStartup: boolean;
  readonly commandLine: string;
  readonly process: ProcessGroup;
  /** Settles with its greeting (on its stdout); rejects when it exits first. */
  readonly ready: PromiseWithResolvers<Ready> = Promise.withResolvers<Ready>();
  /** Whether it greeted. */
  greeted = false;
  /** As what it is counted among the warm Blenders (a metric), while it is. */
  #counted: "zygote" | "pool worker" | undefined;
  /** Settles when it has exited and its output is done. */
  done: Promise<void> = Promise.resolve();
  /** The last lines it printed outside any job, for the error when it will not start. */
  readonly tail: string[] = [];

  constructor(id: string, blender: string, args: string[], factoryStartup: boolean) {
    this.id = id;
    this.factoryStartup = factoryStartup;
    this.commandLine = shellQuote([blender, ...args]);
    this.process = spawnDetached(blender, args);
    this.ready.promise.catch(() => {});
  }

  /** It said it is ready: counted among the warm Blenders (a metric) until {@linkcode WarmBlender.gone}. */
  greet(kind: "zygote" | "pool worker"): void {
    if (this.greeted) return;
    this.greeted = true;
    this.#counted = kind;
    safely(() => meters().warmBlenders.add(1, { "bgproc.blender.kind": kind }));
  }

  /** It exited (said once, however often). */
  gone(): void {
    if (this.#counted === undefined) return;
    const kind = this.#counted;
    this.#counted = undefined;
    safely(() => meters().warmBlenders.add(-1, { "bgproc.blender.kind": kind }));
  }

  /** Keep one of its own lines (Blender's start-up chatter, an error before it was ready). */
  keep(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 20) this.tail.shift();
  }

  /** Its last lines, for an error: `; its last output:` and the lines, or nothing. */
  lastOutput(): string {
    return this.tail.length === 0 ? "" : `; its last output:\n${this.tail.join("\n")}`;
  }
}
