/**
 * The fan-out behind `JobManager.events()`: every subscriber gets every
 * event from when it subscribed, through a bounded buffer of its own.
 *
 * A subscriber that falls {@linkcode EVENT_BACKLOG} events behind loses its
 * oldest progress and log events first (state and health events are kept);
 * if only state and health events fill its buffer, its iterator throws a
 * `RangeError` saying it fell behind. A slow reader never slows the manager.
 */

import type { ManagerEvent } from "./types.ts";

/** How many events a subscriber may have waiting. */
export const EVENT_BACKLOG = 10_000;

interface Subscriber {
  readonly values: ManagerEvent[];
  wake: (() => void) | undefined;
  failed: RangeError | undefined;
  done: boolean;
}

/** The set of subscribers, and the publishing to them. */
export class ManagerEvents {
  readonly #subscribers = new Set<Subscriber>();
  #closed = false;

  /** Give `event` to every subscriber. */
  publish(event: ManagerEvent): void {
    for (const subscriber of this.#subscribers) {
      if (subscriber.values.length >= EVENT_BACKLOG) this.#makeRoom(subscriber);
      if (subscriber.failed !== undefined) continue;
      subscriber.values.push(event);
      wake(subscriber);
    }
  }

  /** End every subscription (after what each has waiting). */
  close(): void {
    this.#closed = true;
    for (const subscriber of this.#subscribers) wake(subscriber);
  }

  /** A new subscription, ending when `signal` aborts, on `return()`, or at `close()`. */
  subscribe(signal?: AbortSignal): AsyncIterableIterator<ManagerEvent> {
    const subscriber: Subscriber = { values: [], wake: undefined, failed: undefined, done: false };
    const onAbort = () => {
      subscriber.done = true;
      wake(subscriber);
    };
    if (signal?.aborted) subscriber.done = true;
    else if (!this.#closed) this.#subscribers.add(subscriber);
    signal?.addEventListener("abort", onAbort, { once: true });
    const subscribers = this.#subscribers;
    const isClosed = () => this.#closed;
    return (async function* () {
      try {
        while (!subscriber.done) {
          const value = subscriber.values.shift();
          if (value !== undefined) {
            yield value;
            continue;
          }
          if (subscriber.failed !== undefined) throw subscriber.failed;
          if (isClosed()) return;
          await new Promise<void>((resolve) => subscriber.wake = resolve);
        }
      } finally {
        subscribers.delete(subscriber);
        signal?.removeEventListener("abort", onAbort);
      }
    })();
  }

  #makeRoom(subscriber: Subscriber): void {
    const index = subscriber.values.findIndex((event) => event.type === "progress" || event.type === "log");
    if (index >= 0) {
      subscriber.values.splice(index, 1);
      return;
    }
    subscriber.failed = new RangeError(
      `Cannot deliver manager events as this events() reader fell ${EVENT_BACKLOG} state events behind`,
    );
    subscriber.values.length = 0;
    this.#subscribers.delete(subscriber);
    wake(subscriber);
  }
}

function wake(subscriber: Subscriber): void {
  const resolve = subscriber.wake;
  subscriber.wake = undefined;
  resolve?.();
}
