/**
 * The Progress watcher actor: one per running attempt. Watches the job
 * directory with `Deno.watchFs`, reads the `progress` file when it changes and
 * publishes every value above the last one it published.
 */

import { basename, join } from "node:path";
import { type ActorRef, type Reply, spawnActor, unreachable } from "./_actor.ts";

/** Messages of the Progress watcher. */
export type ProgressWatcherMessage =
  | { readonly type: "changed" }
  | { readonly type: "stop"; readonly reply: Reply<void> };

/** What the watcher needs. */
export interface ProgressWatcherOptions {
  /** The job directory, which must exist. */
  readonly dir: string;
  /** The progress already published for the job (retries start below it). */
  readonly initial: number;
  /** Called with each new, higher progress value. */
  readonly publish: (value: number) => void;
  /** The file watcher to use. @default {Deno.watchFs} */
  readonly watch?: (dir: string) => Deno.FsWatcher;
}

/** Start watching `options.dir`; `stop` reads the file one last time before it replies. */
export function startProgressWatcher(options: ProgressWatcherOptions): ActorRef<ProgressWatcherMessage> {
  const path = join(options.dir, "progress");
  const watcher = (options.watch ?? ((dir) => Deno.watchFs(dir, { recursive: false })))(options.dir);
  let last = options.initial;
  let readQueued = false;
  let stopped = false;

  const read = async () => {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch {
      return; // Not written yet, or being replaced.
    }
    const value = Number.parseFloat(text);
    if (value >= 0 && value <= 1 && value > last) {
      last = value;
      options.publish(value);
    }
  };

  const self = spawnActor<ProgressWatcherMessage>(`progress:${options.dir}`, {
    async receive(message) {
      switch (message.type) {
        case "changed":
          readQueued = false;
          if (!stopped) await read();
          return;
        case "stop":
          if (!stopped) {
            stopped = true;
            watcher.close();
            await watching;
            await read();
          }
          message.reply.resolve();
          return;
        default:
          unreachable(message);
      }
    },
  });

  const watching = (async () => {
    try {
      for await (const event of watcher) {
        if (readQueued || !event.paths.some((changed) => basename(changed) === "progress")) continue;
        readQueued = true;
        self.tell({ type: "changed" });
      }
    } catch {
      // The watcher was closed or the directory removed: the final read in `stop` covers it.
    }
  })();

  return self;
}
