/** The events the service streams: the manager's own (`manager.events()`), and what the service adds. */

import type { ManagerEvent } from "../../mod.ts";

export type { ManagerEvent };

/**
 * What the service adds to the stream: a job was removed (by this service), or a job's priority is set (when this
 * service added it with one other than 0, or changed it).
 */
export type ServiceEvent =
  | { readonly type: "removed"; readonly name: string }
  | { readonly type: "priority"; readonly name: string; readonly priority: number };

/** Where the service's events come from: every manager event from now until `signal` aborts. */
export type ManagerEvents = (signal: AbortSignal) => AsyncIterable<ManagerEvent>;
