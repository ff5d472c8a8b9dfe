/**
 * The farm's machines for `GET /workers`: over NATS, the namespace's live workers as they advertise themselves (with
 * a stale heartbeat marked); locally, this machine alone, with the attempts the service saw end on it.
 */

import type { JobManager } from "../../mod.ts";
import { BACKENDS } from "../backend.ts";
import { NatsBackend } from "../nats/_backend.ts";
import type { WorkerInfo } from "../nats/_protocol.ts";
import type { ManagerEvent } from "./_events.ts";

/**
 * A heartbeat older than this is stale: a worker advertises itself every second, and the manager forgets one it has
 * not heard of for 5 s (it is then no longer listed).
 */
export const STALE_AFTER_MS = 2_500;

/** One machine of the farm, as `GET /workers` tells it. */
export interface FarmWorker {
  /** The worker's id (`<hostname>-<pid>-<random>`), or `"local"` for this service's own manager. */
  readonly name: string;
  /** The machine's host name. */
  readonly machine: string;
  readonly pid: number;
  readonly tags: readonly string[];
  /** How many jobs it runs at once. */
  readonly slots: number;
  /** Its slots' GPUs; `null` when not known (the local manager does not tell). */
  readonly gpus: readonly string[] | null;
  readonly blenderVersion: string;
  readonly mode: string;
  /** The names of the jobs it runs now. */
  readonly running: readonly string[];
  readonly startedAt: string;
  /** Its last heartbeat (ISO 8601), and how old that was when asked, by the service's clock. */
  readonly heartbeatAt: string;
  readonly heartbeatAgeMs: number;
  /** Whether its heartbeat is older than {@linkcode STALE_AFTER_MS}. */
  readonly stale: boolean;
  /** Attempts it ran to a result, and attempts that failed on it, since it started; `null` from older workers. */
  readonly completed: number | null;
  readonly failed: number | null;
  /** The scripts it takes no job of for now, because they kept failing on it (their names, and until when). */
  readonly blocked: readonly { readonly name: string; readonly until: string }[];
}

/** What `GET /workers` answers. */
export interface FarmWorkers {
  /** `"nats"` when the manager runs its jobs on a cluster's workers, `"local"` when on this machine's Blenders. */
  readonly backend: "nats" | "local";
  readonly staleAfterMs: number;
  readonly workers: readonly FarmWorker[];
}

/**
 * The attempts that ended on this machine since the service started, counted from the manager's `state` events (a
 * retry shows as the next attempt going ACTIVE, so that is where the attempt before it failed).
 */
export class AttemptTally {
  completed = 0;
  failed = 0;
  readonly since: Date = new Date();

  /** Count one event. */
  apply(event: ManagerEvent): void {
    if (event.type !== "state") return;
    if (event.state === "COMPLETED") this.completed++;
    else if (event.state === "ACTIVE" && event.attempt > 1) this.failed++;
    else if (event.state === "DROPPED" && event.attempt >= 1) this.failed++;
  }
}

/** Whether the manager runs its jobs over NATS (a `JobManager` made with `nats`, or a `NatsJobManager`). */
export function overNats(manager: JobManager): boolean {
  return BACKENDS.get(manager) instanceof NatsBackend;
}

/**
 * The farm's machines now.
 *
 * @param manager The service's manager.
 * @param tally The attempts the service saw end (for the local machine).
 * @returns Over NATS, each live worker of the namespace (none until connected); locally, this machine.
 */
export async function farmWorkers(manager: JobManager, tally: AttemptTally): Promise<FarmWorkers> {
  const backend = BACKENDS.get(manager);
  const now = Date.now();
  if (backend instanceof NatsBackend) {
    const live = backend.connectedHost?.liveWorkers() ?? [];
    const workers = live.map((info) => clusterWorker(info, now)).sort((a, b) => a.name.localeCompare(b.name));
    return { backend: "nats", staleAfterMs: STALE_AFTER_MS, workers };
  }
  const blenderVersion = await manager.blenderVersion().catch(() => "unknown");
  const local: FarmWorker = {
    name: "local",
    machine: hostName(),
    pid: Deno.pid,
    tags: [],
    slots: manager.maxWorkers,
    gpus: null,
    blenderVersion,
    mode: manager.mode,
    running: manager.getJobNames({ state: "ACTIVE" }),
    startedAt: tally.since.toISOString(),
    heartbeatAt: new Date(now).toISOString(),
    heartbeatAgeMs: 0,
    stale: false,
    completed: tally.completed,
    failed: tally.failed,
    blocked: [],
  };
  return { backend: "local", staleAfterMs: STALE_AFTER_MS, workers: [local] };
}

function clusterWorker(info: WorkerInfo, now: number): FarmWorker {
  const beat = Date.parse(info.heartbeatAt);
  // By this service's clock: a worker's clock ahead of it reads as a fresh heartbeat, never a negative age.
  const heartbeatAgeMs = Number.isFinite(beat) ? Math.max(0, now - beat) : 0;
  return {
    name: info.id,
    machine: info.hostname,
    pid: info.pid,
    tags: info.tags,
    slots: info.slots,
    gpus: info.gpus ?? [],
    blenderVersion: info.blenderVersion,
    mode: info.mode,
    running: info.running,
    startedAt: info.startedAt,
    heartbeatAt: info.heartbeatAt,
    heartbeatAgeMs,
    stale: heartbeatAgeMs > STALE_AFTER_MS,
    completed: info.completed ?? null,
    failed: info.failed ?? null,
    blocked: (info.blocked ?? []).map(({ name, until }) => ({ name, until })),
  };
}

/** This machine's name, when the process may read it (`--allow-sys=hostname`); never a permission prompt. */
function hostName(): string {
  try {
    if (Deno.permissions.querySync({ name: "sys", kind: "hostname" }).state === "granted") return Deno.hostname();
  } catch {
    // Not allowed to ask, or no name.
  }
  return "this machine";
}
