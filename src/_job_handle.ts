/**
 * The facade's view of one job: a projection of the supervisor's events
 * (state, progress, attempts, result), with the subscriptions users make.
 */

import { awaitAtCaller } from "./_at_caller.ts";
import type { JobEvent } from "./supervisor/supervisor.ts";
import type { JobDroppedError } from "./errors.ts";
import type { JobResult, JobState, LogLine } from "./types.ts";

/** A subscriber's queue of values, and the wake-up of its pending `next()`. */
interface Subscriber<T> {
  readonly values: T[];
  wake: (() => void) | undefined;
}

/** How many lines a `logs()` reader may fall behind before the oldest are dropped. */
const LOG_BACKLOG = 10_000;

/** One job as the facade shows it; fed by `apply(event)`. */
export class JobHandle {
  readonly name: string;
  #state: JobState = "QUEUED";
  #progress = 0;
  #attempts = 0;
  #error: JobDroppedError | undefined;
  readonly #result = Promise.withResolvers<JobResult>();
  #running = false;
  readonly #subscribers = new Set<Subscriber<number>>();
  readonly #logReaders = new Set<Subscriber<LogLine> & { dropped: number }>();
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

  /** Whether an attempt's Blender is running now (not queued, not waiting for a retry). */
  get running(): boolean {
    return this.#running;
  }

  /** The error the job was dropped with, if it was. */
  get error(): JobDroppedError | undefined {
    return this.#error;
  }

  /** The result; a `JobDroppedError`'s stack ends at the caller's `await job.result()`, not in bgproc. */
  result(): Promise<JobResult> {
    return awaitAtCaller(this.#result.promise);
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
    const subscriber: Subscriber<number> = { values: this.#progress > 0 ? [this.#progress] : [], wake: undefined };
    yield* this.#follow(subscriber, this.#subscribers);
  }

  async *logs(): AsyncIterableIterator<LogLine> {
    if (this.ended) return;
    const reader = { values: [] as LogLine[], wake: undefined as (() => void) | undefined, dropped: 0 };
    yield* this.#follow<LogLine, typeof reader>(reader, this.#logReaders, () => {
      if (reader.dropped === 0) return undefined;
      const line = `bgproc: ${reader.dropped} lines were dropped here: this logs() reader fell behind`;
      reader.dropped = 0;
      return { attempt: this.#attempts, stream: "stderr", line };
    });
  }

  /** Yield what reaches `subscriber` (and what `interject` adds first) until the job ends. */
  async *#follow<T, S extends Subscriber<T>>(
    subscriber: S,
    subscribers: Set<S>,
    interject: () => T | undefined = () => undefined,
  ): AsyncGenerator<T> {
    subscribers.add(subscriber);
    try {
      while (true) {
        const extra = interject();
        if (extra !== undefined) yield extra;
        const value = subscriber.values.shift();
        if (value !== undefined) {
          yield value;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((wake) => subscriber.wake = wake);
      }
    } finally {
      subscribers.delete(subscriber);
    }
  }

  apply(event: JobEvent): void {
    switch (event.type) {
      case "started":
        this.#state = "ACTIVE";
        this.#running = true;
        this.#attempts = event.attempt;
        return;
      case "progress":
        this.#setProgress(event.value);
        return;
      case "output":
        for (const reader of this.#logReaders) {
          if (reader.values.length >= LOG_BACKLOG) {
            reader.values.shift();
            reader.dropped++;
          }
          reader.values.push({ attempt: event.attempt, stream: event.stream, line: event.line });
          this.#wake(reader);
        }
        return;
      case "retrying":
        this.#running = false;
        return;
      case "completed":
        this.#running = false;
        this.#state = "COMPLETED";
        this.#setProgress(1);
        this.#releaseFollowers();
        this.#result.resolve(event.result);
        return;
      case "dropped":
        this.#running = false;
        this.#state = "DROPPED";
        this.#error = event.error;
        this.#attempts = event.error.attempts;
        this.#releaseFollowers();
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

  /** The job has ended: drop the abort listener and wake every follower, whose iterators then finish. */
  #releaseFollowers(): void {
    if (this.#abort !== undefined) {
      this.#abort.signal.removeEventListener("abort", this.#abort.listener);
      this.#abort = undefined;
    }
    for (const subscriber of this.#subscribers) this.#wake(subscriber);
    for (const reader of this.#logReaders) this.#wake(reader);
  }

  #wake(subscriber: Subscriber<unknown>): void {
    const wake = subscriber.wake;
    subscriber.wake = undefined;
    wake?.();
  }
}
