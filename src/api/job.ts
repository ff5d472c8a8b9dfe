/**
 * The one `Job`: the facade's view of a job, whichever backend runs it, as a projection of the backend's events
 * (state, progress, attempts, result), with the subscriptions users make.
 */

import { awaitAtCaller } from "../_at_caller.ts";
import type { BackendEvent } from "../backend.ts";
import { Broadcast } from "../channel.ts";
import { JobDroppedError } from "../errors.ts";
import type { JobResult, JobState, JsonObject, LogLine } from "../types.ts";
import type { JobTimings } from "../timings.ts";

/**
 * One job, as {@linkcode JobManager.addJob} returns it: its live state and
 * progress, and its result.
 */
export interface Job<T extends JsonObject = JsonObject> {
  /** The job's name. */
  readonly name: string;
  /** Its state now. */
  readonly state: JobState;
  /** Its progress now, 0 to 1. */
  readonly progress: number;
  /** How many attempts have been started. */
  readonly attempts: number;
  /** Its priority among queued jobs (higher first; see `JobManager.setPriority`). */
  readonly priority: number;
  /**
   * Where the job's time went (queue wait, attempts, their phases), once it has ended; `undefined` before, and for a
   * job that never reached its backend. A completed job's is also its result's `timings`.
   */
  readonly timings: JobTimings | undefined;
  /**
   * The job's progress values as they arrive, rising, ending when the job
   * ends (with 1 when it completes). Starts with the current value if it is
   * above 0.
   */
  progressUpdates(): AsyncIterableIterator<number>;
  /**
   * The job's result once it completes.
   *
   * @throws {JobDroppedError} When the job is dropped. Its message says where the script failed
   * (`... (error) at raises.py:4: ...`), and its stack is taken where this promise is awaited: it ends at your
   * `await job.result()`, not inside bgproc.
   */
  result(): Promise<JobResult<T>>;
  /**
   * The job's output lines as they arrive, from now until the job ends. A
   * reader that falls 10,000 lines behind loses the oldest (a line says so).
   */
  logs(): AsyncIterableIterator<LogLine>;
  /** Kill the job; settles once its Blender process is gone. */
  kill(): Promise<void>;
}

/** How many lines a `logs()` reader may fall behind before the oldest are dropped. */
const LOG_BACKLOG = 10_000;

/** The events about one job. */
type JobEventOf = Exclude<BackendEvent, { type: "health" | "unreadable" | "forgotten" | "known" }>;

/** One job as the facade shows it; fed by `apply(event)`. */
export class JobHandle<T extends JsonObject = JsonObject> implements Job<T> {
  readonly name: string;
  #state: JobState = "QUEUED";
  #progress = 0;
  #attempts = 0;
  #error: Error | undefined;
  #timings: JobTimings | undefined;
  /** Its priority among queued jobs (kept by the facade, which sets it). */
  priority = 0;
  readonly #ended = Promise.withResolvers<void>();
  #load: (() => Promise<JobResult>) | undefined;
  #loaded: Promise<JobResult<T>> | undefined;
  readonly #progressReaders = new Broadcast<number>();
  readonly #logReaders = new Broadcast<LogLine>();
  readonly #kill: () => Promise<void>;
  #abort: { signal: AbortSignal; listener: () => void } | undefined;
  #closed = false;

  readonly #wantLogs: () => void;

  constructor(name: string, kill: () => Promise<void>, wantLogs: () => void = () => {}) {
    this.name = name;
    this.#kill = kill;
    this.#wantLogs = wantLogs;
  }

  /** A job the backend knew before this manager saw it start (another host's): its state now. */
  static known<T extends JsonObject>(
    name: string,
    kill: () => Promise<void>,
    wantLogs: () => void,
    now: { state: JobState; attempts: number; progress: number },
  ): JobHandle<T> {
    const handle = new JobHandle<T>(name, kill, wantLogs);
    handle.#attempts = now.attempts;
    handle.#progress = now.progress;
    if (now.state === "ACTIVE") {
      handle.#state = "ACTIVE";
    }
    return handle;
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

  get timings(): JobTimings | undefined {
    return this.#timings;
  }

  /** The report of a dropped job (or why it never ran), if it was dropped. */
  get report(): string | undefined {
    const error = this.#error;
    if (error === undefined) return undefined;
    return error instanceof JobDroppedError ? error.report : error.message;
  }

  /** The result; a `JobDroppedError`'s stack ends at the caller's `await job.result()`, not in bgproc. */
  result(): Promise<JobResult<T>> {
    return awaitAtCaller(this.#ended.promise.then(() => {
      if (this.#error !== undefined) throw this.#error;
      if (this.#load === undefined) throw new Error(`Job '${this.name}' did not end before its JobManager closed`);
      this.#loaded ??= this.#load() as Promise<JobResult<T>>;
      return this.#loaded;
    }));
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
    if (this.ended || this.#closed) {
      if (this.#progress > 0) yield this.#progress;
      return;
    }
    const channel = this.#progressReaders.subscribe();
    if (this.#progress > 0) yield this.#progress;
    yield* channel.iterate();
  }

  logs(): AsyncIterableIterator<LogLine> {
    // Subscribe now, not on the first next(): lines printed before that are then not lost.
    if (this.ended || this.#closed) return (async function* () {})();
    this.#wantLogs();
    let dropped = 0;
    const channel = this.#logReaders.subscribe({
      capacity: LOG_BACKLOG,
      overflow: (buffered) => {
        buffered.shift();
        dropped++;
      },
    });
    const attempts = () => this.#attempts;
    return (async function* () {
      for await (const line of channel.iterate()) {
        if (dropped > 0) {
          const notice = `bgproc: ${dropped} lines were dropped here: this logs() reader fell behind`;
          dropped = 0;
          yield { attempt: attempts(), stream: "stderr" as const, line: notice };
        }
        yield line;
      }
    })();
  }

  apply(event: JobEventOf): void {
    switch (event.type) {
      case "started":
        this.#state = "ACTIVE";
        this.#attempts = event.attempt;
        return;
      case "progress":
        this.#setProgress(event.value);
        return;
      case "output":
        this.#logReaders.send({ attempt: event.attempt, stream: event.stream, line: event.line });
        return;
      case "retrying":
        return;
      case "completed":
        if (this.ended) return;
        this.#state = "COMPLETED";
        this.#attempts = event.attempts;
        this.#timings = event.timings;
        this.#load = event.load;
        this.#setProgress(1);
        return this.#end();
      case "dropped":
      case "rejected":
        if (this.ended) return;
        this.#state = "DROPPED";
        this.#error = event.error;
        if (event.type === "dropped") {
          this.#attempts = event.error.attempts;
          this.#timings = event.timings;
        }
        return this.#end();
    }
  }

  /** The manager closed before the job ended (its cluster goes on with it): followers end, `result()` rejects. */
  close(): void {
    if (this.ended) return;
    this.#closed = true;
    this.#end();
  }

  #end(): void {
    this.#releaseFollowers();
    this.#ended.resolve();
  }

  #setProgress(value: number): void {
    if (value <= this.#progress) return;
    this.#progress = value;
    this.#progressReaders.send(value);
  }

  /** The job has ended: drop the abort listener and wake every follower, whose iterators then finish. */
  #releaseFollowers(): void {
    if (this.#abort !== undefined) {
      this.#abort.signal.removeEventListener("abort", this.#abort.listener);
      this.#abort = undefined;
    }
    this.#progressReaders.close();
    this.#logReaders.close();
  }
}
