/**
 * The fan-out behind `JobManager.events()`: every subscriber gets every
 * event from when it subscribed, through a bounded buffer of its own.
 *
 * A subscriber that falls {@linkcode EVENT_BACKLOG} events behind loses its
 * oldest progress and log events first (state and health events are kept);
 * if only state and health events fill its buffer, its iterator throws a
 * `RangeError` saying it fell behind. A slow reader never slows the manager.
 */

import { Broadcast } from "../channel.ts";
import type { ManagerEvent } from "../types.ts";

/** How many events a subscriber may have waiting. */
export const EVENT_BACKLOG = 10_000;

/** The set of subscribers, and the publishing to them. */
export class ManagerEvents {
  readonly #broadcast = new Broadcast<ManagerEvent>();

  /** Give `event` to every subscriber. */
  publish(event: ManagerEvent): void {
    this.#broadcast.send(event);
  }

  /** End every subscription (after what each has waiting). */
  close(): void {
    this.#broadcast.close();
  }

  /** A new subscription, ending when `signal` aborts, on `return()`, or at `close()`. */
  subscribe(signal?: AbortSignal): AsyncIterableIterator<ManagerEvent> {
    const channel = this.#broadcast.subscribe({ capacity: EVENT_BACKLOG, overflow: makeRoom });
    // An abort ends the subscription at once, read or not: nothing more is kept for it.
    if (signal?.aborted) channel.close();
    else signal?.addEventListener("abort", () => channel.close(), { once: true });
    return channel.iterate(signal);
  }
}

/** A full subscriber loses its oldest progress or log event; one full of state and health events fails. */
function makeRoom(buffered: ManagerEvent[]): RangeError | undefined {
  const index = buffered.findIndex((event) => event.type === "progress" || event.type === "log");
  if (index >= 0) {
    buffered.splice(index, 1);
    return undefined;
  }
  return new RangeError(
    `Cannot deliver manager events as this events() reader fell ${EVENT_BACKLOG} state events behind`,
  );
}
