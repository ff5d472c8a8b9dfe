/**
 * The Progress watcher actor: one per running attempt. Watches the job
 * directory with `Deno.watchFs`, reads the `progress` file when it changes
 * (safely: see `readProgress`) and publishes every value above the last one
 * it published.
 */

import { basename } from "node:path";
import { type ActorRef, type Reply, spawnActor, unreachable } from "../_actor.ts";
import { JOB_FILES, readProgress } from "./dir.ts";

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
  /** Hears of the watcher's own failure (its owner decides what it means). */
  readonly onCrash: (error: unknown) => void;
}

/** Start watching `options.dir`; `stop` reads the file one last time before it replies. */
export function startProgressWatcher(options: ProgressWatcherOptions): ActorRef<ProgressWatcherMessage> {
  const watcher = (options.watch ?? ((dir) => Deno.watchFs(dir, { recursive: false })))(options.dir);
  let last = options.initial;
  let readQueued = false;
  let stopped = false;

  const read = async () => {
    const value = await readProgress(options.dir); // Not written yet, being replaced, or not a regular file.
    if (value !== undefined && value >= 0 && value <= 1 && value > last) {
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
  }, options.onCrash);

  const watching = (async () => {
    try {
      for await (const event of watcher) {
        if (readQueued || !event.paths.some((changed) => basename(changed) === JOB_FILES.progress)) continue;
        readQueued = true;
        self.tell({ type: "changed" });
      }
    } catch {
      // The watcher was closed or the directory removed: the final read in `stop` covers it.
    }
  })();

  return self;
}
