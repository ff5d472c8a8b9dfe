/**
 * A NATS host's `health`: `"ok"` while connected and some live worker (one that heartbeated within
 * `WORKER_TTL_MS`) can take each queued job of this host; `"failing"` with the reason otherwise.
 */

import type { KvWatchEntry } from "@nats-io/kv";
import type { QueuedIterator } from "@nats-io/transport-node";
import type { ManagerHealth } from "../types.ts";
import { type Cluster, WORKER_TTL_MS } from "./_connection.ts";
import type { WorkerInfo } from "./_protocol.ts";
import { readWorkerInfo, Unreadable } from "./_wire.ts";
import type { UnreadableDesk } from "./_unreadable.ts";

/**
 * The longest a listing of the workers may take: listing a bucket whose entries expire (a worker that stopped
 * heartbeating) can wait for ever for one that expired meanwhile.
 */
export const LISTING_MS = 2_000;

/** How often health is looked at again (workers expire without a message). */
const CHECK_MS = 1_000;

/** The namespace's live workers and the health they make. */
export class HealthWatch {
  readonly #cluster: Cluster;
  readonly #queued: () => Map<string, readonly string[]>;
  readonly #onChange: (health: ManagerHealth) => void;
  readonly #unreadable: UnreadableDesk;
  /** Live workers, with when this host last heard of each (its own clock: machines' clocks may differ). */
  readonly #workers = new Map<string, { info: WorkerInfo; seenAt: number }>();
  #connected = true;
  #current: ManagerHealth = { status: "ok" };
  #watch: QueuedIterator<KvWatchEntry> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;

  constructor(
    cluster: Cluster,
    queued: () => Map<string, readonly string[]>,
    onChange: (health: ManagerHealth) => void,
    unreadable: UnreadableDesk,
  ) {
    this.#cluster = cluster;
    this.#queued = queued;
    this.#onChange = onChange;
    this.#unreadable = unreadable;
  }

  /** Load the workers, then follow them and the connection. */
  async start(): Promise<void> {
    const { workers, nc } = this.#cluster;
    // The workers known now, so `workers()` right after connecting has them. Bounded: listing a bucket whose entries
    // expire (a worker that stopped heartbeating) can wait forever for one that expired meanwhile; the watch below
    // brings every live worker anyway.
    const listing = (async () => {
      for await (const name of await workers.keys()) {
        const entry = await workers.get(name);
        if (entry === null || entry.operation !== "PUT") continue;
        // An entry the server has not expired is at most WORKER_TTL_MS old.
        const info = readWorkerInfo(entry.value);
        if (!(info instanceof Unreadable)) this.#workers.set(name, { info, seenAt: Date.now() });
      }
    })().catch(() => {});
    let bound: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([listing, new Promise<void>((resolve) => bound = setTimeout(resolve, LISTING_MS))]);
    clearTimeout(bound);
    const watch = await workers.watch();
    this.#watch = watch;
    void (async () => {
      for await (const entry of watch) {
        const info = entry.operation === "PUT" ? readWorkerInfo(entry.value) : null;
        if (info instanceof Unreadable) {
          this.#unreadable.report(`kv:${this.#cluster.names.workersBucket}/${entry.key}`, info, entry.value);
        }
        if (info !== null && !(info instanceof Unreadable)) this.#workers.set(entry.key, { info, seenAt: Date.now() });
        else this.#workers.delete(entry.key);
        this.#check();
      }
    })().catch(() => {});
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === "disconnect") this.#connected = false;
        else if (status.type === "reconnect") this.#connected = true;
        else continue;
        this.#check();
      }
    })().catch(() => {});
    this.#timer = setInterval(() => this.#check(), CHECK_MS);
    this.#check();
  }

  /** The health now. */
  get current(): ManagerHealth {
    if (!this.#stopped) this.#check();
    return this.#current;
  }

  /** The workers whose heartbeat is recent. */
  liveWorkers(): WorkerInfo[] {
    const now = Date.now();
    return [...this.#workers.values()].filter((worker) => now - worker.seenAt < WORKER_TTL_MS)
      .map((worker) => worker.info);
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#watch?.stop();
  }

  #check(): void {
    const reason = this.#problem();
    const was = this.#current;
    if (reason === null) {
      if (was.status === "ok") return;
      this.#current = { status: "ok" };
    } else {
      if (was.status === "failing" && was.reason === reason) return;
      const now = new Date();
      const since = was.status === "failing" ? was.since : now;
      this.#current = { status: "failing", reason, failures: 0, since, retryAt: new Date(now.getTime() + CHECK_MS) };
    }
    this.#onChange(this.#current);
  }

  #problem(): string | null {
    if (!this.#connected) return `the NATS server ${this.#cluster.url} cannot be reached`;
    const live = this.liveWorkers();
    if (live.length === 0) {
      return `no worker of namespace '${this.#cluster.names.namespace}' has sent a heartbeat in the last ${
        WORKER_TTL_MS / 1000
      } s`;
    }
    for (const [name, requires] of this.#queued()) {
      if (!live.some((worker) => requires.every((tag) => worker.tags.includes(tag)))) {
        return `no live worker has the tags ${requires.join(", ")} that job '${name}' requires`;
      }
    }
    return null;
  }
}
