/** The events the service streams: the manager's own (`manager.events()`), and what the service adds. */

import type { ManagerEvent } from "../../mod.ts";

export type { ManagerEvent };

/** What the service adds to the stream: a job was removed (by this service). */
export type ServiceEvent = { readonly type: "removed"; readonly name: string };

/** Where the service's events come from: every manager event from now until `signal` aborts. */
export type ManagerEvents = (signal: AbortSignal) => AsyncIterable<ManagerEvent>;
