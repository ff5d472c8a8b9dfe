/**
 * The lanes of the work queue one worker pulls from (`Names.queueSubject`: one priority and one set of tags, each its
 * own consumer, as server 2.9 delivers a consumer's messages in stream order). Priority 0's lanes are always open;
 * a lane of another priority opens when the worker hears that a job was queued on it (a core subscription on the
 * lanes' subjects, and a look at the stream's subjects every {@linkcode LANE_SCAN_MS}) and closes once it had no job
 * for a while. At most {@linkcode MAX_PRIORITY_LANES} are open at a time, the highest: a lower one opens as they
 * empty. Which open lanes hold jobs no worker took yet is one snapshot (the stream's subjects, then the consumers of
 * the lanes that hold messages), shared by every question asked within {@linkcode SNAPSHOT_MS}.
 */

import type { Consumer } from "@nats-io/jetstream";
import type { Subscription } from "@nats-io/transport-node";
import { type Cluster, ensureConsumer, type QueueSettings } from "./_connection.ts";
import { type Lane, tagSubsets } from "./_protocol.ts";

/** An open lane: its subject, its consumer, and whether it is wanted still. */
export interface PullLane extends Lane {
  readonly subject: string;
  /** Its consumer's name. */
  readonly name: string;
  consumer: Consumer;
  /** A job was queued on it since its last empty pull: it stays open. */
  noticed: boolean;
  /** A higher lane took its place (the cap): its loop ends after the pull under way. */
  closing: boolean;
}

/** How many lanes of priorities other than 0 a worker pulls from at once, at most. */
export const MAX_PRIORITY_LANES = 16;

/** How often a worker looks for lanes with jobs it was not told of (it was disconnected, say), ms. */
export const LANE_SCAN_MS = 5_000;

/** How long one snapshot of the lanes' pending jobs answers questions, ms. */
export const SNAPSHOT_MS = 100;

/** One worker's lanes. */
export class LaneBoard {
  readonly #cluster: Cluster;
  readonly #tags: readonly string[];
  readonly #settings: QueueSettings;
  readonly #onOpen: (lane: PullLane) => void;
  readonly #onError: (error: unknown) => void;
  readonly #lanes = new Map<string, PullLane>();
  /** Subjects whose lane is being opened, and the openings under way. */
  readonly #opening = new Set<string>();
  readonly #openings = new Set<Promise<void>>();
  #notices: Subscription | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The looks at the stream under way (one at a time). */
  #looking: Promise<void> = Promise.resolve();
  #snapshot: { readonly at: number; readonly pending: Promise<Map<string, number>> } | undefined;
  #closed = false;
  #toldRefusal = false;

  /** `onOpen`: a lane of a priority other than 0 opened (pull from it); `onError`: what went wrong meanwhile. */
  constructor(
    cluster: Cluster,
    tags: readonly string[],
    settings: QueueSettings,
    onOpen: (lane: PullLane) => void,
    onError: (error: unknown) => void,
  ) {
    this.#cluster = cluster;
    this.#tags = tags;
    this.#settings = settings;
    this.#onOpen = onOpen;
    this.#onError = onError;
  }

  /** Open the lanes of priority 0, one per subset of the worker's tags. */
  async openBase(): Promise<PullLane[]> {
    const lanes: PullLane[] = [];
    for (const requires of tagSubsets([...this.#tags])) lanes.push(await this.#open({ requires, priority: 0 }));
    return lanes;
  }

  /** Hear of jobs queued in lanes of other priorities: now (the stream's subjects), as they come, and now and then. */
  async listen(): Promise<void> {
    this.#notices = this.#cluster.nc.subscribe(this.#cluster.names.priorityQueueSubjects, {
      callback: (error, msg) => {
        if (error === null) return void this.notice(msg.subject);
        // A server whose roles predate priorities: the worker still finds lanes by looking at the stream.
        if (!this.#toldRefusal) this.#onError(error);
        this.#toldRefusal = true;
      },
    });
    this.#timer = setInterval(() => this.#look(), LANE_SCAN_MS);
    await this.#look();
  }

  /**
   * A job was queued on `subject`: open its lane if this worker serves it, it is not open, and the cap allows.
   *
   * @returns Settles once the lane is open (at once when it was, or will not be).
   */
  notice(subject: string): Promise<void> {
    const known = this.#lanes.get(subject);
    if (known !== undefined) known.noticed = true;
    const lane = this.#cluster.names.laneOf(subject);
    if (known !== undefined || this.#closed || this.#opening.has(subject)) return Promise.resolve();
    if (lane === null || lane.priority === 0 || !lane.requires.every((tag) => this.#tags.includes(tag))) {
      return Promise.resolve();
    }
    const open = [...this.#lanes.values()].filter((each) => each.priority !== 0 && !each.closing);
    if (open.length + this.#opening.size >= MAX_PRIORITY_LANES) {
      const lowest = open.sort((a, b) => a.priority - b.priority)[0];
      if (lowest === undefined || lowest.priority >= lane.priority) return Promise.resolve(); // A later look opens it.
      lowest.closing = true;
    }
    this.#opening.add(subject);
    const opening = this.#open(lane).then((opened) => {
      if (this.#closed) this.#lanes.delete(subject);
      else this.#onOpen(opened);
    }, (error) => {
      if (!this.#closed) this.#onError(error);
    }).finally(() => {
      this.#opening.delete(subject);
      this.#openings.delete(opening);
    });
    this.#openings.add(opening);
    return opening;
  }

  /** A lane's loop ended: it is closed (a job queued on it later opens it again). */
  release(lane: PullLane): void {
    if (this.#lanes.get(lane.subject) === lane) this.#lanes.delete(lane.subject);
  }

  /** Make the lane's consumer again (it was removed: by its idle time, or by hand) and pull from the new one. */
  async reopen(lane: PullLane): Promise<void> {
    const name = await ensureConsumer(this.#cluster, lane.requires, this.#settings, lane.priority);
    lane.consumer = await this.#cluster.js.consumers.get(this.#cluster.names.jobsStream, name);
  }

  /**
   * How many jobs no worker took yet wait in the open lanes of priorities above `priority`. At once 0 while none is
   * open: a job without priorities waits for no request.
   */
  async pendingAbove(priority: number): Promise<number> {
    const higher = [...this.#lanes.values()].filter((lane) => lane.priority > priority);
    if (higher.length === 0) return 0;
    const pending = await this.#pending();
    return higher.reduce((sum, lane) => sum + (pending.get(lane.subject) ?? 0), 0);
  }

  /** Stop hearing of lanes; settles once the look under way has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#notices?.unsubscribe();
    await this.#looking;
    await this.#snapshot?.pending.catch(() => {});
    await Promise.all([...this.#openings]);
  }

  async #open(lane: Lane): Promise<PullLane> {
    const { names, js } = this.#cluster;
    const name = await ensureConsumer(this.#cluster, lane.requires, this.#settings, lane.priority);
    const consumer = await js.consumers.get(names.jobsStream, name);
    const subject = names.queueSubject(lane.requires, lane.priority);
    const open: PullLane = { ...lane, subject, name, consumer, noticed: lane.priority !== 0, closing: false };
    this.#lanes.set(subject, open);
    return open;
  }

  /** Look at the stream's subjects for lanes with jobs (one look at a time). */
  #look(): Promise<void> {
    this.#looking = this.#looking.then(async () => {
      if (this.#closed) return;
      const counts = await this.#subjects(this.#cluster.names.priorityQueueSubjects).catch((error) => {
        if (!this.#closed) this.#onError(error);
        return {};
      });
      await this.#noticeAll(counts);
    });
    return this.#looking;
  }

  /** The stream's message counts by subject, of the subjects `filter` matches (one request). */
  async #subjects(filter: string): Promise<Record<string, number>> {
    const info = await this.#cluster.jsm.streams.info(this.#cluster.names.jobsStream, { subjects_filter: filter });
    return info.state.subjects ?? {};
  }

  /** Open the lanes that hold messages; settles once they are open. */
  async #noticeAll(counts: Record<string, number>): Promise<void> {
    const subjects = Object.entries(counts).filter(([, count]) => count > 0).map(([subject]) => subject);
    // Highest first: with more lanes than the cap, the highest open.
    const priority = (subject: string) => this.#cluster.names.laneOf(subject)?.priority ?? 0;
    await Promise.all(subjects.sort((a, b) => priority(b) - priority(a)).map((subject) => this.notice(subject)));
  }

  /** The open lanes' jobs no worker took yet, by subject: one snapshot per {@linkcode SNAPSHOT_MS}. */
  #pending(): Promise<Map<string, number>> {
    const now = Date.now();
    if (this.#snapshot !== undefined && now - this.#snapshot.at < SNAPSHOT_MS) return this.#snapshot.pending;
    const pending = this.#takeSnapshot().catch(() => new Map<string, number>());
    this.#snapshot = { at: now, pending };
    return pending;
  }

  async #takeSnapshot(): Promise<Map<string, number>> {
    const { jsm, names } = this.#cluster;
    const counts = await this.#subjects(names.queueSubjects);
    void this.#noticeAll(counts);
    const pending = new Map<string, number>();
    // Only the lanes that hold messages have a consumer worth asking (what they hold may be running already).
    const holding = [...this.#lanes.values()].filter((lane) => (counts[lane.subject] ?? 0) > 0);
    await Promise.all(holding.map(async (lane) => {
      const info = await jsm.consumers.info(names.jobsStream, lane.name).catch(() => null);
      pending.set(lane.subject, info?.num_pending ?? 0);
    }));
    return pending;
  }
}
