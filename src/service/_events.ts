/**
 * The events the service streams. `ManagerEvent` is declared here exactly as `manager.events()` will yield it
 * (see the attempt-seam work); until that lands, `_events_adapter.ts` derives the same events from the public
 * job API. Swapping to `manager.events()` is one line in `mod.ts`.
 */

import type { DropReason, JobState, ManagerHealth } from "../../mod.ts";

/** One change in a JobManager: a job's state, progress or output line, or the manager's health. */
export type ManagerEvent =
  | {
    readonly type: "state";
    readonly name: string;
    readonly state: JobState;
    readonly attempt: number;
    readonly reason?: DropReason;
  }
  | { readonly type: "progress"; readonly name: string; readonly progress: number }
  | {
    readonly type: "log";
    readonly name: string;
    readonly attempt: number;
    readonly stream: "stdout" | "stderr";
    readonly line: string;
  }
  | { readonly type: "health"; readonly health: ManagerHealth };

/** What the service adds to the stream: a job was removed (by this service). */
export type ServiceEvent = { readonly type: "removed"; readonly name: string };

/** Where the service's events come from: every manager event from now until `signal` aborts. */
export type ManagerEvents = (signal: AbortSignal) => AsyncIterable<ManagerEvent>;
