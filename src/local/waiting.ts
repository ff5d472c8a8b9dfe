/**
 * The jobs not running now: queued for a first attempt, due for a retry, or
 * waiting out a retry's backoff. Retries that are due go before the queue.
 */

import type { TimerId } from "./clock.ts";
import type { TraceCarrier } from "../_telemetry.ts";

/** A job as the supervisor keeps it until it ends. */
export interface SupervisedJob {
  readonly name: string;
  /** The job directory's name under the jobs root: unique per submission, so a reused name never shares one. */
  readonly dir: string;
  readonly specJson: string;
  readonly blendFile: string | null;
  readonly timeoutMs: number;
  readonly logFile: string | null;
  /** Whether Blender starts with `--factory-startup` for this job. @default {true} */
  readonly factoryStartup?: boolean;
  /** Where the job's outputs go, or `null`/absent for a folder in the results root. */
  readonly outputDir?: string | null;
  /** This job's attempts, or `null`/absent for the manager's `maxAttempts`. */
  readonly maxAttempts?: number | null;
  /** Files copied into the job directory before each attempt. */
  readonly inputs?: readonly string[];
  /** When the job was added (epoch milliseconds). @default {when the supervisor got it} */
  readonly addedMs?: number;
  /** The job's span, the parent of its attempts' spans; `null`/absent: its attempts make none. */
  readonly trace?: TraceCarrier | null;
  /** Higher first among jobs waiting for a first attempt; first in, first out within one. @default {0} */
  readonly priority?: number;
}

/** A job's next attempt. */
export interface NextAttempt {
  readonly job: SupervisedJob;
  readonly attempt: number;
  /** The progress already published for the job. */
  readonly progress: number;
}

/**
 * The waiting jobs, in the order they are to be started: due retries first, then first attempts by priority (higher
 * first), first in, first out within a priority.
 */
export class WaitingJobs {
  /** Jobs waiting for a first attempt, by priority, each in the order they came; Maps so a kill is O(1). */
  readonly #queue = new Map<number, Map<string, { job: SupervisedJob; seq: number }>>();
  /** The priorities that have queued jobs, highest first. */
  #priorities: number[] = [];
  /** Each queued job's priority. */
  readonly #priorityOf = new Map<string, number>();
  /** The latest arrival (`seq`) put in each priority's bucket: a later one is appended, an earlier one sorted in. */
  readonly #lastSeq = new Map<number, number>();
  #seq = 0;
  /** Jobs whose next attempt is due. */
  readonly #due: NextAttempt[] = [];
  /** Jobs waiting out a retry backoff, with their timers. */
  readonly #backingOff = new Map<string, NextAttempt & { readonly timer: TimerId }>();

  /** Queue a job's first attempt. */
  enqueue(job: SupervisedJob): void {
    this.#put(job, job.priority ?? 0, this.#seq++);
  }

  /** Change a queued job's priority (it keeps its place among jobs of its new priority); whether it was queued. */
  reprioritize(name: string, priority: number): boolean {
    const from = this.#priorityOf.get(name);
    if (from === undefined) return false;
    const entry = this.#remove(name, from)!;
    this.#put({ ...entry.job, priority }, priority, entry.seq);
    return true;
  }

  #put(job: SupervisedJob, priority: number, seq: number): void {
    let bucket = this.#queue.get(priority);
    if (bucket === undefined) {
      bucket = new Map();
      this.#queue.set(priority, bucket);
      this.#priorities = [...this.#priorities, priority].sort((a, b) => b - a);
    }
    this.#priorityOf.set(job.name, priority);
    if ((this.#lastSeq.get(priority) ?? -1) < seq) {
      this.#lastSeq.set(priority, seq);
      bucket.set(job.name, { job, seq });
      return;
    }
    // An earlier job moved here: it goes in its place by when it came, so the bucket is rebuilt.
    const entries = [...bucket.values(), { job, seq }].sort((a, b) => a.seq - b.seq);
    bucket.clear();
    for (const entry of entries) bucket.set(entry.job.name, entry);
  }

  #remove(name: string, priority: number): { job: SupervisedJob; seq: number } | undefined {
    const bucket = this.#queue.get(priority);
    const entry = bucket?.get(name);
    if (bucket === undefined || entry === undefined) return undefined;
    bucket.delete(name);
    this.#priorityOf.delete(name);
    if (bucket.size === 0) {
      this.#queue.delete(priority);
      this.#lastSeq.delete(priority);
      this.#priorities = this.#priorities.filter((each) => each !== priority);
    }
    return entry;
  }

  /** Make a retry due now. */
  addDue(next: NextAttempt): void {
    this.#due.push(next);
  }

  /** Park a retry until its timer fires (then `backoffEnded`). */
  addBackingOff(next: NextAttempt, timer: TimerId): void {
    this.#backingOff.set(next.job.name, { ...next, timer });
  }

  /** The backoff of `name` is over: its retry is due. Returns whether there was one. */
  backoffEnded(name: string): boolean {
    const waiting = this.#backingOff.get(name);
    if (waiting === undefined) return false;
    this.#backingOff.delete(name);
    this.#due.push({ job: waiting.job, attempt: waiting.attempt, progress: waiting.progress });
    return true;
  }

  /** Take the next attempt to start: a due retry, else the first queued job. */
  takeNext(): NextAttempt | undefined {
    const due = this.#due.shift();
    if (due !== undefined) return due;
    const highest = this.#priorities[0];
    if (highest === undefined) return undefined;
    const first = this.#queue.get(highest)!.values().next().value!;
    this.#remove(first.job.name, highest);
    return { job: first.job, attempt: 1, progress: 0 };
  }

  /** Take `name` out wherever it waits; returns it and its attempts so far, and the timer to clear. */
  take(name: string): { job: SupervisedJob; attempts: number; timer?: TimerId } | undefined {
    const priority = this.#priorityOf.get(name);
    if (priority !== undefined) return { job: this.#remove(name, priority)!.job, attempts: 0 };
    const waiting = this.#backingOff.get(name);
    if (waiting !== undefined) {
      this.#backingOff.delete(name);
      return { job: waiting.job, attempts: waiting.attempt - 1, timer: waiting.timer };
    }
    const index = this.#due.findIndex((entry) => entry.job.name === name);
    if (index < 0) return undefined;
    const [entry] = this.#due.splice(index, 1) as [NextAttempt];
    return { job: entry.job, attempts: entry.attempt - 1 };
  }

  /** The names of every waiting job. */
  names(): string[] {
    return [...this.#priorityOf.keys(), ...this.#backingOff.keys(), ...this.#due.map((entry) => entry.job.name)];
  }
}
