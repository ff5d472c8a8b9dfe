/**
 * The host's view of one cluster job: a projection of its KV record and of
 * the progress and log messages on its subjects, with the subscriptions a
 * local job offers (`result()`, `progressUpdates()`, `logs()`, `kill()`).
 */

import { awaitAtCaller } from "../_at_caller.ts";
import { JobDroppedError } from "../errors.ts";
import type { Job } from "../job_manager.ts";
import type { JobResult, JobState, JsonObject, LogLine } from "../types.ts";
import type { JobRecord } from "./_protocol.ts";

interface Subscriber<T> {
  readonly values: T[];
  wake: (() => void) | undefined;
}

const LOG_BACKLOG = 10_000;

/** One cluster job as a host sees it. */
export class NatsJob<T extends JsonObject = JsonObject> implements Job<T> {
  readonly name: string;
  /** The submission this handle follows. */
  readonly id: string;
  #record: JobRecord | undefined;
  #progress = 0;
  #settled = false;
  #closed = false;
  #failure: Error | undefined;
  readonly #result = Promise.withResolvers<JobResult<T>>();
  readonly #ended = Promise.withResolvers<void>();
  readonly #progressReaders = new Set<Subscriber<number>>();
  readonly #logReaders = new Set<Subscriber<LogLine> & { dropped: number }>();
  readonly #kill: () => Promise<void>;
  readonly #materialize: (record: JobRecord) => Promise<JobResult>;
  readonly #followLogs: () => void;
  /** Settles once the job is in the cluster (or failed to get there). */
  submitted: Promise<void> = Promise.resolve();

  constructor(
    name: string,
    id: string,
    kill: () => Promise<void>,
    materialize: (record: JobRecord) => Promise<JobResult>,
    followLogs: () => void,
  ) {
    this.name = name;
    this.id = id;
    this.#kill = kill;
    this.#materialize = materialize;
    this.#followLogs = followLogs;
    this.#result.promise.catch(() => {});
  }

  /** The record as last seen, if any. */
  get record(): JobRecord | undefined {
    return this.#record;
  }

  get state(): JobState {
    if (this.#failure !== undefined) return "DROPPED";
    return this.#record?.state ?? "QUEUED";
  }

  get progress(): number {
    return this.#progress;
  }

  get attempts(): number {
    return this.#record?.attempts ?? 0;
  }

  /** The worker running it (or that ended it), if any. */
  get worker(): string | null {
    return this.#record?.worker ?? null;
  }

  /** Whether the job has completed or been dropped. */
  get ended(): boolean {
    return this.state === "COMPLETED" || this.state === "DROPPED";
  }

  /** The job's report, when it was dropped. */
  get report(): string | undefined {
    if (this.#failure !== undefined) return this.#failure.message;
    const report = this.#record?.state === "DROPPED" ? this.#record.report : null;
    return report === null || report === undefined ? undefined : new JobDroppedError(report).report;
  }

  /** Settles once the job has ended (or the manager closed). */
  whenEnded(): Promise<void> {
    return this.#ended.promise;
  }

  result(): Promise<JobResult<T>> {
    return awaitAtCaller(this.#result.promise);
  }

  kill(): Promise<void> {
    return this.#kill();
  }

  async *progressUpdates(): AsyncIterableIterator<number> {
    if (this.ended || this.#closed) {
      if (this.#progress > 0) yield this.#progress;
      return;
    }
    yield* this.#follow({ values: this.#progress > 0 ? [this.#progress] : [], wake: undefined }, this.#progressReaders);
  }

  logs(): AsyncIterableIterator<LogLine> {
    // Subscribe now, not on the first next(): lines printed before that are then not lost.
    if (!this.ended && !this.#closed) this.#followLogs();
    return this.#logs();
  }

  async *#logs(): AsyncIterableIterator<LogLine> {
    if (this.ended || this.#closed) return;
    const reader = { values: [] as LogLine[], wake: undefined as (() => void) | undefined, dropped: 0 };
    yield* this.#follow<LogLine, typeof reader>(reader, this.#logReaders, () => {
      if (reader.dropped === 0) return undefined;
      const line = `bgproc: ${reader.dropped} lines were dropped here: this logs() reader fell behind`;
      reader.dropped = 0;
      return { attempt: this.attempts, stream: "stderr", line };
    });
  }

  /** Whether anyone reads this job's log lines. */
  get hasLogReaders(): boolean {
    return this.#logReaders.size > 0;
  }

  async *#follow<V, S extends Subscriber<V>>(
    subscriber: S,
    subscribers: Set<S>,
    interject: () => V | undefined = () => undefined,
  ): AsyncGenerator<V> {
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
        if (this.ended || this.#closed) return;
        await new Promise<void>((wake) => subscriber.wake = wake);
      }
    } finally {
      subscribers.delete(subscriber);
    }
  }

  /** A new version of the record arrived. */
  update(record: JobRecord): void {
    if (record.id !== this.id) return;
    this.#record = record;
    this.onProgress(record.state === "COMPLETED" ? 1 : record.progress);
    if (record.state === "COMPLETED" || record.state === "DROPPED") this.#settle(record);
  }

  /** The submission failed before the job reached the cluster. */
  fail(error: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#failure = error;
    this.#result.reject(error);
    this.#wakeAll();
    this.#ended.resolve();
  }

  /** A progress message arrived. */
  onProgress(value: number): void {
    if (!(value > this.#progress) || value > 1) return;
    this.#progress = value;
    for (const reader of this.#progressReaders) {
      reader.values.push(value);
      wake(reader);
    }
  }

  /** A log line arrived. */
  onLog(line: LogLine): void {
    for (const reader of this.#logReaders) {
      if (reader.values.length >= LOG_BACKLOG) {
        reader.values.shift();
        reader.dropped++;
      }
      reader.values.push(line);
      wake(reader);
    }
  }

  /** The manager closed: readers end; a result not in yet rejects. */
  close(): void {
    this.#closed = true;
    this.#wakeAll();
    if (!this.#settled) {
      this.#settled = true;
      this.#result.reject(new Error(`Job '${this.name}' did not end before its NatsJobManager closed`));
    }
    this.#ended.resolve();
  }

  #settle(record: JobRecord): void {
    if (this.#settled) return;
    this.#settled = true;
    const done = record.state === "COMPLETED"
      ? this.#materialize(record).then((result) => this.#result.resolve(result as JobResult<T>))
      : Promise.resolve().then(() => {
        if (record.report === null) throw new Error(`Job '${this.name}' was dropped without a report`);
        this.#result.reject(new JobDroppedError(record.report));
      });
    void done.catch((error) => this.#result.reject(error)).finally(() => {
      this.#wakeAll();
      this.#ended.resolve();
    });
  }

  #wakeAll(): void {
    for (const reader of this.#progressReaders) wake(reader);
    for (const reader of this.#logReaders) wake(reader);
  }
}

function wake(subscriber: Subscriber<unknown>): void {
  const w = subscriber.wake;
  subscriber.wake = undefined;
  w?.();
}
