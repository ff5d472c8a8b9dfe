/** What the fork and pool runners share about a warm Blender: its process, its flavour, its greeting, its end. */

import { shellQuote } from "../job/lines.ts";
import { type ProcessGroup, spawnDetached } from "./_process_group.ts";

/** A Blender kept running between attempts (a fork-mode zygote, a pool worker), started at once. */
export class WarmBlender<Ready> {
  readonly id: string;
  /** Started with `--factory-startup`: it takes only jobs that ask for the same. */
  readonly factoryStartup: boolean;
  readonly commandLine: string;
  readonly process: ProcessGroup;
  /** Settles with its greeting on the runner's socket; rejects when it exits first. */
  readonly ready: PromiseWithResolvers<Ready> = Promise.withResolvers<Ready>();
  /** Its control connection, once it greeted. */
  connection: Deno.UnixConn | undefined;
  /** Settles when it has exited and its output and connection are done. */
  done: Promise<void> = Promise.resolve();

  constructor(id: string, blender: string, args: string[], factoryStartup: boolean) {
    this.id = id;
    this.factoryStartup = factoryStartup;
    this.commandLine = shellQuote([blender, ...args]);
    this.process = spawnDetached(blender, args);
    this.ready.promise.catch(() => {});
  }
}
