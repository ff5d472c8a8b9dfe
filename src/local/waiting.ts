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
}

/** A job's next attempt. */
export interface NextAttempt {
  readonly job: SupervisedJob;
  readonly attempt: number;
  /** The progress already published for the job. */
  readonly progress: number;
}

/** The waiting jobs, in the order they are to be started. */
export class WaitingJobs {
  /** Jobs waiting for a first attempt, in order; a Map so a kill can take one out in O(1). */
  readonly #queue = new Map<string, SupervisedJob>();
  /** Jobs whose next attempt is due. */
  readonly #due: NextAttempt[] = [];
  /** Jobs waiting out a retry backoff, with their timers. */
  readonly #backingOff = new Map<string, NextAttempt & { readonly timer: TimerId }>();

  /** Queue a job's first attempt. */
  enqueue(job: SupervisedJob): void {
    this.#queue.set(job.name, job);
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
    const first = this.#queue.values().next();
    if (first.done) return undefined;
    this.#queue.delete(first.value.name);
    return { job: first.value, attempt: 1, progress: 0 };
  }

  /** Take `name` out wherever it waits; returns it and its attempts so far, and the timer to clear. */
  take(name: string): { job: SupervisedJob; attempts: number; timer?: TimerId } | undefined {
    const queued = this.#queue.get(name);
    if (queued !== undefined) {
      this.#queue.delete(name);
      return { job: queued, attempts: 0 };
    }
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
    return [...this.#queue.keys(), ...this.#backingOff.keys(), ...this.#due.map((entry) => entry.job.name)];
  }
}
