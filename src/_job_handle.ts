/**
 * The facade's view of one job: a projection of the supervisor's events
 * (state, progress, attempts, result), with the subscriptions users make.
 */

import type { JobEvent } from "./_supervisor.ts";
import type { JobDroppedError } from "./errors.ts";
import type { JobResult, JobState } from "./types.ts";

/** A subscriber's queue of progress values, and the wake-up of its pending `next()`. */
interface Subscriber {
  readonly values: number[];
  wake: (() => void) | undefined;
}

/** One job as the facade shows it; fed by `apply(event)`. */
export class JobHandle {
  readonly name: string;
  #state: JobState = "QUEUED";
  #progress = 0;
  #attempts = 0;
  #error: JobDroppedError | undefined;
  readonly #result = Promise.withResolvers<JobResult>();
  readonly #subscribers = new Set<Subscriber>();
  readonly #kill: () => Promise<void>;
  #abort: { signal: AbortSignal; listener: () => void } | undefined;

  constructor(name: string, kill: () => Promise<void>) {
    this.name = name;
    this.#kill = kill;
    // The promise is handed out by result(); a job nobody awaits must not be an unhandled rejection.
    this.#result.promise.catch(() => {});
  }

  get state(): JobState {
    return this.#state;
  }

  /** Whether the job has completed or been dropped. */
  get ended(): boolean {
    return this.#state === "COMPLETED" || this.#state === "DROPPED";
  }

  get progress(): number {
    return this.#progress;
  }

  get attempts(): number {
    return this.#attempts;
  }

  /** The error the job was dropped with, if it was. */
  get error(): JobDroppedError | undefined {
    return this.#error;
  }

  result(): Promise<JobResult> {
    return this.#result.promise;
  }

  kill(): Promise<void> {
    return this.#kill();
  }

  /** Kill the job when `signal` aborts (the listener goes when the job ends). */
  killOnAbort(signal: AbortSignal): void {
    const listener = () => void this.#kill().catch(() => {});
    this.#abort = { signal, listener };
    signal.addEventListener("abort", listener, { once: true });
  }

  async *progressUpdates(): AsyncIterableIterator<number> {
    if (this.ended) {
      if (this.#progress > 0) yield this.#progress;
      return;
    }
    const subscriber: Subscriber = { values: this.#progress > 0 ? [this.#progress] : [], wake: undefined };
    this.#subscribers.add(subscriber);
    try {
      while (true) {
        const value = subscriber.values.shift();
        if (value !== undefined) {
          yield value;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((wake) => subscriber.wake = wake);
      }
    } finally {
      this.#subscribers.delete(subscriber);
    }
  }

  apply(event: JobEvent): void {
    switch (event.type) {
      case "started":
        this.#state = "ACTIVE";
        this.#attempts = event.attempt;
        return;
      case "progress":
        this.#setProgress(event.value);
        return;
      case "output":
      case "retrying":
        return;
      case "completed":
        this.#state = "COMPLETED";
        this.#setProgress(1);
        this.#ended();
        this.#result.resolve(event.result);
        return;
      case "dropped":
        this.#state = "DROPPED";
        this.#error = event.error;
        this.#attempts = event.error.attempts;
        this.#ended();
        this.#result.reject(event.error);
        return;
    }
  }

  #setProgress(value: number): void {
    if (value <= this.#progress) return;
    this.#progress = value;
    for (const subscriber of this.#subscribers) {
      subscriber.values.push(value);
      this.#wake(subscriber);
    }
  }

  #ended(): void {
    if (this.#abort !== undefined) {
      this.#abort.signal.removeEventListener("abort", this.#abort.listener);
      this.#abort = undefined;
    }
    for (const subscriber of this.#subscribers) this.#wake(subscriber);
  }

  #wake(subscriber: Subscriber): void {
    const wake = subscriber.wake;
    subscriber.wake = undefined;
    wake?.();
  }
}
