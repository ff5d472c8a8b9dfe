/**
 * The seam under `JobManager`: what runs the jobs. The facade checks a job's options once ({@linkcode CheckedJob})
 * and hands it to its backend; the backend tells the facade what happens as {@linkcode BackendEvent}s. Two
 * backends exist: local Blenders (`local/backend.ts`: the supervisor, its job actors and a runner) and a NATS
 * cluster (`nats/host.ts`: job records and their watch turned into the same events).
 */

import type { CheckedJob } from "./api/checked_job.ts";
import type { JobDroppedError } from "./errors.ts";
import type { JobResult, JobState, ManagerHealth } from "./types.ts";
import type { JobTimings } from "./timings.ts";

/** What a backend tells the facade about its jobs, and about itself. */
export type BackendEvent =
  /** A job the facade did not submit: another host's, or one recorded before this manager started. */
  | {
    readonly type: "known";
    readonly name: string;
    /** Its state as found; an ended one's `completed` or `dropped` event follows at once. */
    readonly state: JobState;
    readonly attempts: number;
    readonly progress: number;
  }
  | { readonly type: "started"; readonly name: string; readonly attempt: number }
  | { readonly type: "progress"; readonly name: string; readonly value: number }
  | {
    readonly type: "output";
    readonly name: string;
    readonly attempt: number;
    readonly stream: "stdout" | "stderr";
    readonly line: string;
  }
  /** An attempt failed and the job waits for its next one. */
  | { readonly type: "retrying"; readonly name: string }
  /** The job completed; `load` fetches its result (at once locally; from the cluster's store over NATS). */
  | {
    readonly type: "completed";
    readonly name: string;
    readonly attempts: number;
    /** Where its time went, when the backend knows without loading the result. */
    readonly timings?: JobTimings;
    readonly load: () => Promise<JobResult>;
  }
  | {
    readonly type: "dropped";
    readonly name: string;
    readonly error: JobDroppedError;
    /** Where its time went, when the backend knows. */
    readonly timings?: JobTimings;
  }
  /** A message or record from the cluster that could not be read: skipped, and dead-lettered (told once per kind). */
  | { readonly type: "unreadable"; readonly subject: string; readonly problem: string }
  /** The job never reached the backend (a name taken in the cluster, a server that cannot be reached). */
  | { readonly type: "rejected"; readonly name: string; readonly error: Error }
  /** An ended job was removed by someone else (another host). */
  | { readonly type: "forgotten"; readonly name: string }
  | { readonly type: "health"; readonly health: ManagerHealth };

/** Each manager's backend, for what a kind of manager adds to the facade (`NatsJobManager`: workers, files). */
export const BACKENDS: WeakMap<object, Backend> = new WeakMap();

/** Settings a backend takes while it runs. */
export interface BackendSettings {
  readonly maxWorkers?: number;
  readonly maxAttempts?: number;
}

/** What runs a manager's jobs. Every method but `submit` may be called after `close()`. */
export interface Backend {
  /** Settles once jobs can be known and submitted (connected, every job of the namespace known). */
  ready(): Promise<void>;
  /** Run `job`; what happens reaches the facade as events. Never throws: a failure is a `rejected` event. */
  submit(job: CheckedJob): void;
  /** Kill a job; settles once it has ended. */
  kill(name: string): Promise<void>;
  /** Change a queued job's priority; whether it was still queued. */
  reprioritize(name: string, priority: number): Promise<boolean>;
  /** Kill every job that has not ended; settles once each has. */
  killAll(): Promise<void>;
  /** Forget an ended job and what it left (its result's files, its record). */
  forget(name: string): Promise<void>;
  /** Someone reads output lines: send `output` events from now on (a cluster sends none until asked). */
  wantLogs(): void;
  /** Apply new settings to jobs from now on. */
  configure(settings: BackendSettings): void;
  /** Whether the backend can run jobs now. */
  readonly health: ManagerHealth;
  /** How many more attempts could start now. */
  readonly availableWorkers: number;
  /** The folder of bgproc's built-in job scripts (append, render chunk, render video) on this host. */
  readonly jobScripts: string;
  /** This manager's folder on this host. */
  readonly workRoot: string;
  /** Whether jobs read and write this host's files by their paths: local Blenders do, a cluster's workers do not. */
  readonly sharesFiles: boolean;
  /** Whether job names are shared with other managers (a cluster's namespace), so generated names must not repeat. */
  readonly sharedNames: boolean;
  /** Stop: a local backend kills its jobs, a cluster's go on. Nothing submitted before is lost. */
  close(): Promise<void>;
}
