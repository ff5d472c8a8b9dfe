/**
 * The Progress watcher actor: one per running attempt. Looks at the job's
 * `progress` file every few milliseconds (an `lstat`, and a read only when
 * the file changed), reads it safely (see `readProgress`), and publishes
 * every value above the last one it published. One timer makes every
 * watcher of the process look (with a timer each, 8 running jobs woke the
 * host 2,000 times a second).
 *
 * Why not `Deno.watchFs`: its watcher thread opens new entries of the
 * watched folder, so a script that makes a FIFO there blocks that thread,
 * and closing the watcher then blocks the whole host. A job's directory is
 * the script's to spoil; polling one `lstat` never blocks.
 */

import { join } from "node:path";
import { type ActorRef, type Reply, spawnActor, unreachable } from "../_actor.ts";
import { JOB_FILES, readProgress } from "./job/dir.ts";

/** How often the progress file is looked at, in milliseconds. */
export const PROGRESS_POLL_MS = 4;

/** The watchers' looks, made every {@linkcode PROGRESS_POLL_MS} by one timer while there are any. */
const looks = new Set<() => void>();
let ticker: ReturnType<typeof setTimeout> | undefined;

function tick(): void {
  ticker = undefined;
  for (const look of looks) {
    try {
      look();
    } catch {
      // One watcher's trouble is its own: the others look on.
    }
  }
  // `??=`: a watcher that started during the looks has armed the timer already, and one timer is all there may be.
  if (looks.size > 0) ticker ??= setTimeout(tick, PROGRESS_POLL_MS);
}

/** Call `look` every {@linkcode PROGRESS_POLL_MS} until the returned function is called. */
function everyPoll(look: () => void): () => void {
  looks.add(look);
  ticker ??= setTimeout(tick, PROGRESS_POLL_MS);
  return () => {
    looks.delete(look);
    if (looks.size > 0 || ticker === undefined) return;
    clearTimeout(ticker);
    ticker = undefined;
  };
}

/** Messages of the Progress watcher. */
export type ProgressWatcherMessage =
  | { readonly type: "look" }
  | { readonly type: "stop"; readonly reply: Reply<void> };

/** What the watcher needs. */
export interface ProgressWatcherOptions {
  /** The job directory. */
  readonly dir: string;
  /** The progress already published for the job (retries start below it). */
  readonly initial: number;
  /** Called with each new, higher progress value. */
  readonly publish: (value: number) => void;
  /** Hears of the watcher's own failure (its owner decides what it means). */
  readonly onCrash: (error: unknown) => void;
}

/** Start watching `options.dir`; `stop` reads the file one last time before it replies. */
export function startProgressWatcher(options: ProgressWatcherOptions): ActorRef<ProgressWatcherMessage> {
  const path = join(options.dir, JOB_FILES.progress);
  let last = options.initial;
  let seen = "";
  let stopped = false;
  /** A look is asked for and not done yet: the timer asks for no other meanwhile. */
  let asked = false;
  let stopLooking = () => {};

  const read = async () => {
    const value = await readProgress(options.dir); // Not written yet, being replaced, or not a regular file.
    if (value !== undefined && value >= 0 && value <= 1 && value > last) {
      last = value;
      options.publish(value);
    }
  };

  /**
   * Read when the file is another one, or changed, since the last look. The `lstat` is asynchronous, one at a time per
   * watcher: the job may have put its folder behind a link to a path that hangs, and then only that lstat's thread
   * waits, not the host.
   */
  const look = async () => {
    const info = await Deno.lstat(path).catch(() => undefined);
    const stamp = info === undefined ? "" : `${info.ino}:${info.size}:${info.mtime?.getTime()}`;
    if (stamp !== "" && stamp !== seen) {
      seen = stamp;
      await read();
    }
  };

  const self = spawnActor<ProgressWatcherMessage>(`progress:${options.dir}`, {
    async receive(message) {
      switch (message.type) {
        case "look":
          try {
            if (!stopped) await look();
          } finally {
            asked = false;
          }
          return;
        case "stop":
          if (!stopped) {
            stopped = true;
            stopLooking();
            await read();
          }
          message.reply.resolve();
          return;
        default:
          unreachable(message);
      }
    },
  }, (error) => {
    stopLooking(); // A crashed watcher is not asked to look again.
    options.onCrash(error);
  });
  const ask = () => {
    if (asked) return;
    asked = true;
    try {
      self.tell({ type: "look" });
    } catch {
      stopLooking(); // It is gone.
    }
  };
  stopLooking = everyPoll(ask);
  ask();
  return self;
}
