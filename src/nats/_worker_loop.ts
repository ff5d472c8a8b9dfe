/**
 * The worker's loop: pulls jobs from its consumers while it has free slots, runs each on its local backend
 * (heartbeating the message, publishing progress and lines, obeying cancels), records the result or report in the
 * job's record before acking, and on stop lets running jobs finish within the grace period, then hands them back.
 */

import type { JsMsg } from "@nats-io/jetstream";
import type { Subscription } from "@nats-io/transport-node";
import { droppedBeforeBlender } from "../_dropped.ts";
import { type CheckedJob, checkJob, type JobDefaults } from "../api/checked_job.ts";
import type { Job } from "../api/job.ts";
import { JobDroppedError } from "../errors.ts";
import type { LocalJobs } from "../local/jobs.ts";
import { backoffMs, jittered } from "../local/policy.ts";
import type { DataBlockSelection, JobResult, JsonObject } from "../types.ts";
import { type Cluster, WORKER_TTL_MS } from "./_connection.ts";
import { LaneBoard, type PullLane } from "./_lanes.ts";
import { LISTING_MS } from "./_health.ts";
import { dropLost, dropUntrusted, listenMaxDeliveries, publishDeadLetter } from "./_dead_letter.ts";
import type { FileCache, Uploader } from "./_files.ts";
import {
  encode,
  type JobRecord,
  type LogMessage,
  type ProgressMessage,
  type QueueMessage,
  type WorkerInfo,
} from "./_protocol.ts";
import { changeRecord, ended, readRecord, type Revisioned } from "./_records.ts";
import { recordResult } from "./_worker_result.ts";
import { readQueueMessage, readWorkerInfo, Unreadable } from "./_wire.ts";
import { UnreadableDesk } from "./_unreadable.ts";
import { canonicalJson, sign, signedEnd, signedJob, signedProgress, type Signing, whyUntrusted } from "./_signing.ts";
import { join } from "node:path";
import { type Context, contextOf, meters, safely, SpanKind, traceAttempt } from "../_telemetry.ts";
import type { AttemptTiming, JobTimings, PhaseTiming } from "../timings.ts";
import { clipped, withTiming } from "./_timings.ts";
import { layOut, layoutOf } from "./_layout.ts";
import { deliveriesFor, ScriptBlocklist, withFailedOn, WORKER_FAILURES } from "./_blocklist.ts";

/** What a worker reports to `RunWorkerOptions.onEvent`. */
export type WorkerEvent =
  | { readonly type: "ready"; readonly info: WorkerInfo }
  | { readonly type: "started"; readonly name: string; readonly attempt: number }
  | { readonly type: "completed"; readonly name: string; readonly attempt: number }
  | { readonly type: "failed"; readonly name: string; readonly attempt: number; readonly report: string }
  | { readonly type: "handed-back"; readonly name: string }
  | { readonly type: "stopping" }
  /** A message or record it could not read: skipped and dead-lettered (told once per kind of subject and problem). */
  | { readonly type: "unreadable"; readonly subject: string; readonly problem: string }
  | { readonly type: "error"; readonly error: unknown };

/** The worker's local Blenders: its jobs, their defaults, and its Blender's version. */
export interface WorkerBlenders {
  readonly jobs: LocalJobs;
  readonly defaults: JobDefaults;
  readonly blenderVersion: string;
}

/** What the loop works with, made and closed by `runWorker`. */
export interface WorkerSetup {
  readonly id: string;
  readonly machine: string;
  readonly cluster: Cluster;
  readonly cache: FileCache;
  readonly uploader: Uploader;
  readonly local: WorkerBlenders;
  readonly mode: "process" | "pool" | "fork";
  readonly slots: number;
  readonly tags: readonly string[];
  /** Its slots' GPUs (advertised; the local backend gives them to the jobs). */
  readonly gpus: readonly string[];
  readonly ackWaitMs: number;
  readonly maxAttempts: number;
  readonly graceMs: number;
  /** Its key (results are signed with it) and the host keys it trusts (only jobs they signed run). */
  readonly signing: Signing;
  readonly emit: (event: WorkerEvent) => void;
}

/** A job this worker took. */
interface Running {
  readonly name: string;
  readonly queued: QueueMessage;
  /** Its delivery: the newest, when the server delivered its message again to this worker while it ran. */
  msg: JsMsg;
  /** When its message arrived; when its record was claimed (epoch ms, fractional, from the monotonic clock). */
  readonly received: number;
  claimed: number;
  /** When its record was claimed, by the wall clock (`Date.now()`): its timing's clock, as Blender's phases are. */
  claimedAt: number;
  local: Job | undefined;
  cancelled: boolean;
  handBack: boolean;
  /** Its slot: not taken yet, taken (claimed, running), or given back (its Blender is done). */
  slot: "waiting" | "taken" | "released";
  /** Which of the worker's slots it took (0 for the first), for its trace. */
  slotNumber: number;
  /** Its lane's priority: among the jobs waiting for a slot here, the highest goes first (then the oldest). */
  readonly priority: number;
  /** The job's span on its host: from the message's `traceparent` header, else from its record. */
  trace: Context | undefined;
  /** Its local job's name, once its files are being fetched (its layout folder is named by it). */
  localName?: string;
  /** When its files were fetched (epoch ms), once they were. */
  fetch: PhaseTiming | undefined;
  /** Its files being fetched and its spec checked, from its claim on (`#prepare`). */
  preparing?: Promise<CheckedJob>;
  /** Its record as this worker last wrote it (its claim, a progress), to write the next change without a read. */
  known?: Revisioned;
  /** The progress write under way, if any (settles without failing). */
  progressWrite?: Promise<void>;
}

/** How often a running job's progress is written into its record, at most, in ms. */
const PROGRESS_RECORD_MS = 500;

/** The most characters of each output tail a report keeps in the record (KV values are small). */
const TAIL_LIMIT = 64 * 1024;

/** One worker's pulling and running. */
export class WorkerLoop {
  readonly #setup: WorkerSetup;
  readonly #running = new Set<Running>();
  /** The slot numbers taken now. */
  readonly #slotNumbers = new Set<number>();
  /** Slots taken: a job's slot is free again once its Blender is done, before its result is recorded. */
  #busy = 0;
  readonly #stop = new AbortController();
  readonly #waiters = new Set<() => void>();
  readonly #startedAt = new Date().toISOString();
  /** The scripts that keep failing here. */
  readonly #blocklist = new ScriptBlocklist();
  /** Attempts run to a result, and attempts failed, since the worker started (advertised). */
  #completed = 0;
  #failedCount = 0;
  readonly #heartbeatMs: number;
  readonly #unreadable: UnreadableDesk;
  /** The lanes of the queue this worker pulls from: priority 0's always, others while they have jobs. */
  readonly #board: LaneBoard;
  /** The pull loops of lanes other than priority 0's (they come and go). */
  readonly #laneLoops = new Set<Promise<void>>();

  constructor(setup: WorkerSetup) {
    this.#setup = setup;
    this.#unreadable = new UnreadableDesk(setup.cluster, `worker ${setup.id}`, (unreadable) => {
      setup.emit({ type: "unreadable", ...unreadable });
    });
    this.#heartbeatMs = Math.max(50, Math.floor(setup.ackWaitMs / 3));
    const settings = { ackWaitMs: setup.ackWaitMs, maxDeliver: deliveriesFor(setup.maxAttempts) };
    this.#board = new LaneBoard(setup.cluster, setup.tags, settings, (lane) => this.#pullFrom(lane), (error) => {
      setup.emit({ type: "error", error });
    });
  }

  /** Stop pulling; running jobs get the grace period. */
  stop(): void {
    if (this.#stop.signal.aborted) return;
    this.#setup.emit({ type: "stopping" });
    this.#stop.abort();
    this.#wake();
  }

  /** Pull and run until stopped; settles once every job this worker took has finished or been handed back. */
  async run(): Promise<void> {
    const { cluster, emit } = this.#setup;
    const advertiser = setInterval(() => this.#advertise(), WORKER_TTL_MS / 5);
    const advisories = listenMaxDeliveries(cluster, this.#unreadable, (error) => emit({ type: "error", error }), false);
    try {
      const base = await this.#board.openBase();
      await cluster.workers.put(this.#setup.id, encode(this.#info()));
      emit({ type: "ready", info: this.#info() });
      await this.#board.listen();
      await Promise.all(base.map((lane) => this.#pullLoop(lane)));
      await this.#finishWithinGrace();
    } finally {
      this.#stop.abort(); // Also when it failed: no lane pulls on.
      this.#wake();
      clearInterval(advertiser);
      advisories.unsubscribe();
      await this.#board.close();
      while (this.#laneLoops.size > 0) await Promise.all([...this.#laneLoops]);
      for (const job of this.#running) {
        job.handBack = true;
        await job.local?.kill().catch(() => {});
      }
    }
  }

  /** Stopping: let running jobs finish within the grace period, then kill them and hand them back. */
  async #finishWithinGrace(): Promise<void> {
    const grace = setTimeout(() => {
      for (const job of this.#running) {
        job.handBack = true;
        void job.local?.kill().catch(() => {});
      }
      this.#wake();
    }, this.#setup.graceMs);
    try {
      while (this.#running.size > 0) await this.#changed();
    } finally {
      clearTimeout(grace);
    }
  }

  #info(): WorkerInfo {
    const { id, machine, mode, slots, tags, local } = this.#setup;
    return {
      id,
      hostname: machine,
      pid: Deno.pid,
      blenderVersion: local.blenderVersion,
      mode,
      slots,
      tags: [...tags],
      running: [...this.#running].map((job) => job.name),
      startedAt: this.#startedAt,
      heartbeatAt: new Date().toISOString(),
      completed: this.#completed,
      failed: this.#failedCount,
      blocked: this.#blocklist.list(),
      ...(this.#setup.gpus.length === 0 ? {} : { gpus: [...this.#setup.gpus] }),
    };
  }

  #advertise(): void {
    const { cluster, id, emit } = this.#setup;
    void cluster.workers.put(id, encode(this.#info())).catch((error) => emit({ type: "error", error }));
  }

  #changed(): Promise<void> {
    return new Promise<void>((resolve) => this.#waiters.add(resolve));
  }

  /** `#changed()`, or `ms` later, whichever comes first. */
  #changedOr(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }

  #wake(): void {
    for (const waiter of this.#waiters) waiter();
    this.#waiters.clear();
  }

  /** Pull from a lane of a priority other than 0 that just opened, until it closes. */
  #pullFrom(lane: PullLane): void {
    const loop = this.#pullLoop(lane).catch((error) => this.#setup.emit({ type: "error", error }))
      .finally(() => this.#board.release(lane));
    this.#laneLoops.add(loop);
    void loop.finally(() => this.#laneLoops.delete(loop));
  }

  /**
   * Pull from one lane while a slot is free for its priority and no open lane of a higher priority has jobs no worker
   * took. A lane other than priority 0's ends after {@linkcode LANE_IDLE_PULLS} empty pulls in a row, or when a higher
   * one takes its place.
   */
  async #pullLoop(lane: PullLane): Promise<void> {
    let empty = 0;
    while (!this.#stop.signal.aborted && !lane.closing) {
      // Each lane pulls one message at a time: a worker with several lanes may hold a message or two more than its
      // slots; those wait (heartbeated, not claimed) for a slot in #takeSlot, highest priority first.
      if (this.#full(lane.priority)) {
        await this.#changed();
        continue;
      }
      if (await this.#board.pendingAbove(lane.priority).catch(() => 0) > 0) {
        await this.#changedOr(OUTRANKED_RECHECK_MS);
        continue;
      }
      if (this.#full(lane.priority) || this.#stop.signal.aborted) continue;
      let pulled: boolean;
      try {
        pulled = await this.#pull(lane);
      } catch (error) {
        // Its consumer may be gone (removed by hand, or idle for a day): a lane of another priority closes (a job
        // queued on it opens it again); one of priority 0 makes it again.
        if (lane.priority !== 0) return;
        this.#setup.emit({ type: "error", error });
        await this.#changedOr(500);
        await this.#board.reopen(lane).catch(() => {});
        continue;
      }
      if (pulled || lane.priority === 0) {
        empty = 0;
        continue;
      }
      if (lane.noticed) empty = 0;
      lane.noticed = false;
      if (++empty >= LANE_IDLE_PULLS) return; // Opened again (LaneBoard.notice) once a job is queued on it.
    }
  }

  /** One pull from `lane` (waits up to a second for a message); returns whether it got one. */
  async #pull(lane: PullLane): Promise<boolean> {
    const msg = await lane.consumer.next({ expires: 1000 });
    if (msg === null) return false;
    this.#received(msg, lane);
    return true;
  }

  /** A message was pulled from `lane`: a job to run here (or one this worker runs already, or garbage). */
  #received(msg: JsMsg, lane: PullLane): void {
    if (this.#adopt(msg)) return; // Also while stopping: the running attempt keeps its message.
    if (this.#stop.signal.aborted) return msg.nak(); // Stopping: another worker takes it.
    const queued = readQueueMessage(msg.data);
    if (queued instanceof Unreadable) {
      // Not a job this worker can read: another program's, or garbage. It is taken off the queue, not retried.
      msg.term();
      this.#unreadable.report(msg.subject, queued, msg.data);
      return;
    }
    const job: Running = {
      name: queued.name,
      queued,
      msg,
      received: epochMs(),
      claimed: 0,
      claimedAt: 0,
      local: undefined,
      cancelled: false,
      handBack: false,
      slot: "waiting",
      slotNumber: -1,
      priority: lane.priority,
      trace: contextOf({ traceparent: msg.headers?.get("traceparent"), tracestate: msg.headers?.get("tracestate") }),
      fetch: undefined,
    };
    this.#running.add(job);
    this.#wake(); // Lanes of a lower priority may not pull now (#full).
    void this.#runMessage(job);
  }

  /** Whether no slot is free for a job of `priority`: taken slots and the jobs waiting at that priority or above. */
  #full(priority: number): boolean {
    let holding = this.#busy;
    for (const job of this.#running) if (job.slot === "waiting" && job.priority >= priority) holding++;
    return holding >= this.#setup.slots;
  }

  /**
   * Wait for a slot for `job`: the highest priority among the jobs waiting here goes first, then the oldest. If it
   * `mayDecline` (its deliveries allow), it goes back to the queue (a nak, no attempt spent) rather than take the last
   * free slots while open lanes of higher priorities hold as many jobs no worker took, or rather than wait here
   * longer than {@linkcode HOLD_MS} while every slot is taken (another worker may be free).
   *
   * @returns Whether it took a slot, went back, or the worker stopped.
   */
  async #takeSlot(job: Running, mayDecline: boolean): Promise<"taken" | "declined" | "stopped"> {
    const since = Date.now();
    while (!this.#stop.signal.aborted) {
      if (this.#busy >= this.#setup.slots || this.#waitingBefore(job)) {
        if (mayDecline && this.#busy >= this.#setup.slots && Date.now() - since >= HOLD_MS) return "declined";
        await this.#changedOr(HOLD_MS);
        continue;
      }
      const above = await this.#board.pendingAbove(job.priority).catch(() => 0);
      if (this.#busy >= this.#setup.slots || this.#waitingBefore(job) || this.#stop.signal.aborted) continue;
      if (mayDecline && above >= this.#setup.slots - this.#busy) return "declined";
      this.#busy++;
      job.slot = "taken";
      job.slotNumber = this.#takeSlotNumber();
      return "taken";
    }
    return "stopped";
  }

  /** Whether another job waiting here for a slot goes before `job`: a higher priority, or the same and older. */
  #waitingBefore(job: Running): boolean {
    for (const other of this.#running) {
      if (other === job || other.slot !== "waiting") continue;
      if (other.priority > job.priority) return true;
      if (other.priority === job.priority && other.msg.info.streamSequence < job.msg.info.streamSequence) return true;
    }
    return false;
  }

  /** One delivery of a job: claim its record, run it, record how it ended, ack (or nak for another attempt). */
  async #runMessage(job: Running): Promise<void> {
    const { msg, queued } = job;
    const { cluster, emit, id } = this.#setup;
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    let cancels: Subscription | undefined;
    try {
      const current = embeddedRecord(job.queued, msg) ?? await readRecord(cluster.jobs, queued.name);
      const attempt = await this.#vet(job, current);
      if (attempt === null || current === null) return;
      heartbeat = setInterval(() => {
        job.msg.working(); // The newest delivery: see #adopt.
        safely(() => meters().heartbeats.add(1));
      }, this.#heartbeatMs);
      // A slot first (a worker with several lanes may hold more messages than slots): claimed only once it runs.
      const spare = deliveriesFor(current.record.maxAttempts) - msg.info.deliveryCount -
        (current.record.maxAttempts - current.record.attempts);
      const slot = await this.#takeSlot(job, spare > 1 && msg.info.deliveryCount <= DECLINING_DELIVERIES);
      if (slot !== "taken") return job.msg.nak(); // Never claimed: another worker (or this one, later) takes it.
      cancels = cluster.nc.subscribe(cluster.names.jobSubject(queued.name, "cancel"), {
        callback: (_error, request) => {
          job.cancelled = true;
          void job.local?.kill().catch(() => {});
          request.respond(encode({ worker: id }));
        },
      });
      // The claim is sent first; its files are fetched and its spec checked while it is written (Blender starts only
      // once it is).
      const claiming = this.#claim(job, current, attempt);
      job.preparing = this.#prepare(current.record, job);
      job.preparing.catch(() => {}); // Its failure is the attempt's, once claimed (#execute).
      const claim = await claiming;
      if (claim === null) return await this.#refused(job);
      const mine = claim.record;
      job.known = claim;
      job.claimed = epochMs();
      job.claimedAt = Date.now();
      job.trace ??= contextOf(mine.trace);
      if (msg.info.deliveryCount === 1 && queued.spent === undefined) this.#pickedUp(job);
      emit({ type: "started", name: queued.name, attempt });
      await this.#execute(job, mine, attempt);
    } catch (error) {
      // Not the job's fault (NATS trouble, a file that could not be fetched): another attempt may do better.
      emit({ type: "error", error });
      job.msg.nak(1000);
    } finally {
      clearInterval(heartbeat);
      cancels?.unsubscribe();
      if (job.local !== undefined) {
        await job.local.result().catch(() => {});
        this.#release(job);
        await this.#setup.local.jobs.remove(job.local.name);
        await Deno.remove(this.#outputsFolder(job.local.name), { recursive: true }).catch(() => {});
      }
      if (job.local === undefined) this.#release(job); // Its slot is free while a refused claim's files still come.
      await job.preparing?.catch(() => {}); // Its layout is written before it goes.
      if (job.localName !== undefined) {
        await Deno.remove(this.#layoutFolder(job.localName), { recursive: true }).catch(() => {});
      }
      this.#release(job);
      this.#running.delete(job);
      this.#advertise();
      this.#wake();
    }
  }

  /**
   * Whether the job of this delivery may run here, on which attempt; or `null` when this delivery was settled: acked
   * (its job ended or moved, or is out of attempts), declined, or dropped as untrusted.
   */
  async #vet(job: Running, current: Revisioned | null): Promise<number | null> {
    const { msg, queued } = job;
    const { cluster, emit, id } = this.#setup;
    if (current === null || current.record.id !== queued.id || ended(current.record)) return ack(msg);
    // Its host moved it to another lane (`setPriority`): a message of another move count is stale, the job's new one
    // runs it.
    if ((current.record.moves ?? 0) !== (queued.moves ?? 0)) return ack(msg);
    // Attempts are counted in the record (each claim is one), not by deliveries: a worker may decline a delivery.
    const attempt = current.record.attempts + 1;
    if (attempt > current.record.maxAttempts) {
      await dropLost(cluster, queued, current.record.attempts);
      return ack(msg);
    }
    if (await this.#declines(current.record, msg)) {
      msg.nak(DECLINE_DELAY_MS);
      return null;
    }
    const untrusted = await this.#untrusted(current.record);
    if (untrusted === null) return attempt;
    // Jobs are code: one no trusted host signed never runs here. Dropped (not retried) and dead-lettered.
    await dropUntrusted(cluster, current.record, untrusted, attempt, id);
    emit({ type: "failed", name: queued.name, attempt, report: untrusted });
    msg.term();
    return null;
  }

  /**
   * Claim the job's record for `attempt` (a compare-and-set at the revision it was read at, or its queue message
   * carried): not if it changed in what was checked (its submission, move count, attempts, signed part) or ended.
   */
  #claim(job: Running, current: Revisioned, attempt: number): Promise<Revisioned | null> {
    const { queued, msg } = job;
    const checked = canonicalJson(signedJob(current.record));
    return changeRecord(this.#setup.cluster.jobs, queued.name, (record) => {
      if (record.id !== queued.id || ended(record) || (record.moves ?? 0) !== (queued.moves ?? 0)) return null;
      // Another delivery claimed it meanwhile (a requeued message), or what was checked is not what runs.
      if (record.attempts !== current.record.attempts) return null;
      if (canonicalJson(signedJob(record)) !== checked) return null;
      return {
        ...record,
        state: "ACTIVE",
        worker: this.#setup.id,
        attempts: attempt,
        progress: 0,
        queueSeq: msg.info.streamSequence,
      };
    }, current);
  }

  /**
   * The claim was refused: ack the delivery if its message is stale (its job ended, moved, or was replaced) or is
   * another message of a job claimed through its own; leave it alone if the job was claimed through this same message
   * (another delivery of it, after this worker's heartbeat came late): an ack is by stream sequence and would take the
   * message from under that attempt.
   */
  async #refused(job: Running): Promise<void> {
    const { queued, msg } = job;
    const now = await readRecord(this.#setup.cluster.jobs, queued.name).catch(() => undefined);
    if (now === undefined) return; // Unknown: the message is redelivered after the ack wait, and looked at again.
    const record = now?.record;
    const stale = record === undefined || record.id !== queued.id || ended(record) ||
      (record.moves ?? 0) !== (queued.moves ?? 0);
    if (stale || record.queueSeq !== msg.info.streamSequence) msg.ack();
  }

  /**
   * Whether `msg` is a new delivery of a message this worker runs now (its heartbeat came late, under load, and the
   * server delivered it again, here): the running attempt takes the new delivery for its heartbeats and its ack, and
   * no second attempt starts (which, on a job's last attempt, would drop the job as lost while it runs).
   */
  #adopt(msg: JsMsg): boolean {
    for (const job of this.#running) {
      if (job.msg.info.streamSequence !== msg.info.streamSequence || job.msg.info.stream !== msg.info.stream) continue;
      job.msg = msg;
      msg.working();
      return true;
    }
    return false;
  }

  /** Give the job's slot back (once): its Blender is done, so the next job may start while this one is recorded. */
  #release(job: Running): void {
    if (job.slot !== "taken") return;
    job.slot = "released";
    this.#slotNumbers.delete(job.slotNumber);
    this.#busy--;
    this.#wake();
  }

  /**
   * Whether this worker declines a delivery of `record` (a nak: no attempt is spent): the job failed here through no
   * fault of its script, or its script keeps failing here, and another live worker can take it. Never when the
   * deliveries left would not cover the job's attempts left.
   */
  async #declines(record: JobRecord, msg: JsMsg): Promise<boolean> {
    const failedHere = Array.isArray(record.failedOn) && record.failedOn.includes(this.#setup.id);
    if (!failedHere && !this.#blocklist.blocks(scriptHash(record))) return false;
    const spare = deliveriesFor(record.maxAttempts) - msg.info.deliveryCount - (record.maxAttempts - record.attempts);
    return spare > 1 && await this.#othersCanTake(record);
  }

  /** Whether another live worker can take `record`: its tags fit, the job did not fail on it, it blocks no script. */
  async #othersCanTake(record: JobRecord): Promise<boolean> {
    const { cluster, id } = this.#setup;
    const failedOn = Array.isArray(record.failedOn) ? record.failedOn : [];
    const script = scriptHash(record);
    const now = Date.now();
    let bound: ReturnType<typeof setTimeout> | undefined;
    try {
      const keys = await cluster.workers.keys();
      bound = setTimeout(() => keys.stop(), LISTING_MS); // Unbounded, it waited for ever for an expired worker's key.
      for await (const key of keys) {
        const entry = key === id ? null : await cluster.workers.get(key);
        if (entry === null || entry.operation !== "PUT") continue;
        const info = readWorkerInfo(entry.value);
        if (info instanceof Unreadable || info.id === id || failedOn.includes(info.id)) continue;
        if (!(now - Date.parse(info.heartbeatAt) < WORKER_TTL_MS)) continue;
        if (!record.spec.requires.every((tag) => info.tags.includes(tag))) continue;
        if (info.blocked?.some((each) => each.sha256 === script && Date.parse(each.until) > now)) continue;
        return true;
      }
    } catch {
      // The workers cannot be read now: this worker takes the job rather than leave it.
    } finally {
      clearTimeout(bound);
    }
    return false;
  }

  /** The lowest slot number no running job holds. */
  #takeSlotNumber(): number {
    let number = 0;
    while (this.#slotNumbers.has(number)) number++;
    this.#slotNumbers.add(number);
    return number;
  }

  /**
   * This attempt's timing (from its claim to `endMs`): the files' fetch, what the local backend timed, the upload;
   * and its spans under the job's span on its host (made here, at their real times).
   */
  #timed(job: Running, attempt: number, end: AttemptEnd): AttemptTiming {
    const { id, mode } = this.#setup;
    const ran = end.local?.attempts.at(-1);
    const phases = [...(job.fetch === undefined ? [] : [job.fetch]), ...(ran?.phases ?? [])];
    if (end.upload !== undefined) phases.push(end.upload);
    const timing: AttemptTiming = {
      attempt,
      startMs: job.claimedAt,
      endMs: end.endMs,
      outcome: end.outcome,
      ranOn: ran === undefined ? `worker ${id}` : `worker ${id}: ${ran.ranOn}`,
      ...(ran?.blender === undefined ? {} : { blender: ran.blender }),
      phases: clipped(phases, job.claimedAt, end.endMs),
    };
    traceAttempt(job.trace, timing, {
      "bgproc.job.name": job.name,
      "bgproc.mode": mode,
      "bgproc.worker": id,
      "bgproc.slot": job.slotNumber,
      ...end.exit,
    }, SpanKind.CONSUMER);
    return timing;
  }

  /** A first delivery was claimed: how long it waited in the queue (a metric). */
  #pickedUp(job: Running): void {
    const waited = Math.max(0, job.claimedAt - job.msg.info.timestampNanos / 1e6) / 1000;
    safely(() => meters().pickup.record(waited, { "bgproc.mode": this.#setup.mode }));
  }

  /** Run the claimed job on the local backend and record its result (or its report). */
  async #execute(job: Running, mine: JobRecord, attempt: number): Promise<void> {
    const { emit, id, uploader, local: blenders } = this.#setup;
    let local: Job;
    try {
      const prepared = await job.preparing!;
      if (job.cancelled || job.handBack) {
        // Killed (or handed back, the worker stopping) while its files came: its Blender never starts.
        const summary = "it was killed before its Blender started";
        return await this.#failed(job, mine, attempt, droppedBeforeBlender(mine.name, "killed", summary, attempt));
      }
      local = this.#setup.local.jobs.run(prepared);
    } catch (error) {
      job.fetch ??= { phase: "fetch", startMs: job.claimedAt, endMs: Date.now() };
      // This worker's own trouble (its disk is full or failing): another worker may do better, the job is not blamed.
      if (isDiskTrouble(error)) throw error;
      // Its files cannot be fetched, or its spec is bad: the job's failure, not the worker's.
      const summary = `it cannot start on worker ${id}: ${error instanceof Error ? error.message : String(error)}`;
      const dropped = droppedBeforeBlender(mine.name, "start-failed", summary, attempt, { cause: error });
      await this.#failed(job, mine, attempt, dropped);
      return;
    }
    job.local = local;
    this.#advertise(); // Once its Blender has the job: what the workers bucket says is not on the job's way.
    if (job.cancelled) void local.kill();
    void this.#pump(job, mine.id, attempt, local);
    let result: JobResult;
    try {
      result = await local.result();
    } catch (error) {
      if (!(error instanceof JobDroppedError)) throw error;
      this.#release(job);
      await this.#failed(job, mine, attempt, error);
      return;
    }
    this.#release(job);
    const place = { uploader, workRoot: blenders.jobs.backend.workRoot, worker: id };
    const uploadStart = Date.now();
    const recorded = {
      ...await recordResult(place, result, attempt, this.#outputsFolder(local.name)),
      times: { received: job.received, claimed: job.claimed, recorded: epochMs() },
    };
    const uploaded = Date.now();
    const timing = this.#timed(job, attempt, {
      endMs: uploaded,
      outcome: "completed",
      local: result.timings,
      upload: { phase: "upload", startMs: uploadStart, endMs: uploaded },
      exit: { "process.exit.code": 0 },
    });
    const end = { name: mine.name, id: mine.id, attempts: attempt, worker: id, result: recorded };
    const { key } = this.#setup.signing;
    const endSignature = key === undefined ? undefined : await sign(key, signedEnd(end));
    const written = await this.#write(job, (record) => {
      if (!stillMine(record, mine, id, attempt)) return null;
      const completed: JobRecord = {
        ...record,
        state: "COMPLETED",
        worker: id,
        attempts: attempt,
        progress: 1,
        result: recorded,
        timings: withTiming(record.timings, timing),
      };
      return endSignature === undefined ? completed : { ...completed, endSignature };
    });
    if (written !== null || await this.#maySettle(mine)) job.msg.ack();
    this.#blocklist.note(scriptHash(mine), mine.spec.script.name, "completed");
    if (written !== null) {
      this.#completed++;
      emit({ type: "completed", name: mine.name, attempt });
    }
  }

  /** Why this worker must not run `record` (no trusted host signed it), or `null` when it may. */
  async #untrusted(record: JobRecord): Promise<string | null> {
    const { trusted } = this.#setup.signing;
    if (trusted === undefined) return null;
    const why = await whyUntrusted(trusted, signedJob(record), record.jobSignature);
    return why === null ? null : `worker ${this.#setup.id} runs only jobs signed by a host it trusts, and ${why}`;
  }

  /** Where the local backend keeps a local job's outputs until they are uploaded. */
  #outputsFolder(localName: string): string {
    return join(this.#setup.local.jobs.backend.workRoot, "nats-outputs", localName);
  }

  /** Where a local job's .blend, script and the files they use are laid out at their host paths. */
  #layoutFolder(localName: string): string {
    return join(this.#setup.local.jobs.backend.workRoot, "nats-files", localName);
  }

  /** The job's files fetched (timed as `job.fetch`) and its spec checked (it came over the network), to run locally. */
  async #prepare(record: JobRecord, job: Running): Promise<CheckedJob> {
    const { spec } = record;
    const { cache, local } = this.#setup;
    const startMs = Date.now();
    const name = `nats-${crypto.randomUUID().slice(0, 8)}`;
    job.localName = name; // Its layout folder goes with the attempt, whatever happens from here.
    const layout = spec.blendFile === null ? undefined : await layoutOf(spec, cache);
    // With a layout, the .blend and the script sit among the files they use, at the paths they had on the host.
    const laidOut = layout === undefined || spec.blendFile === null
      ? undefined
      : await layOut(this.#layoutFolder(name), layout, spec.blendFile, spec.script, cache);
    const script = laidOut?.script ?? await cache.get(spec.script);
    const blendFile = laidOut?.blendFile ?? (spec.blendFile === null ? undefined : await cache.get(spec.blendFile));
    let passedDataBlocks: DataBlockSelection | undefined;
    if (spec.passedDataBlocks !== null) {
      passedDataBlocks = { from: await cache.get(spec.passedDataBlocks.file), ...spec.passedDataBlocks.blocks };
    }
    const passedData = spec.passedDataFile === undefined
      ? spec.passedData
      : JSON.parse(await Deno.readTextFile(await cache.get(spec.passedDataFile))) as JsonObject;
    const inputs: string[] = [];
    for (const ref of Array.isArray(spec.inputs) ? spec.inputs : []) inputs.push(await cache.get(ref));
    const options = checkJob(name, {
      inputs,
      outputDir: this.#outputsFolder(name),
      script,
      passedData,
      args: [...spec.args],
      timeout: spec.timeoutMs,
      // Only what a record may set of how a job runs: not where its outputs go, nor its attempts.
      ...pick(spec.runOptions ?? {}, ["factoryStartup", "addons", "progress"]),
      ...(blendFile === undefined ? {} : { blendFile }),
      ...(passedDataBlocks === undefined ? {} : { passedDataBlocks }),
    }, local.defaults);
    const notes = Array.isArray(spec.notes) ? spec.notes.filter((note) => typeof note === "string").slice(0, 60) : [];
    job.fetch = { phase: "fetch", startMs, endMs: Date.now() };
    return { ...options, notes, pathRoot: laidOut === undefined ? null : this.#layoutFolder(name) };
  }

  /**
   * Change the record of a job this worker claimed, first at the revision it last wrote (no read: a change made by
   * another party since only costs a retry), and keep the revision it writes.
   */
  async #write(job: Running, change: (record: JobRecord) => JobRecord | null): Promise<JobRecord | null> {
    await job.progressWrite; // Its revision is the one to write at.
    const written = await changeRecord(this.#setup.cluster.jobs, job.name, change, job.known);
    if (written !== null && (job.known === undefined || written.revision > job.known.revision)) job.known = written;
    return written?.record ?? null;
  }

  /** Publish the job's progress and lines on its subjects; progress into the record now and then. */
  async #pump(job: Running, recordId: string, attempt: number, local: Job): Promise<void> {
    const { cluster, emit, id } = this.#setup;
    const { name } = job;
    const progressSubject = cluster.names.jobSubject(name, "progress");
    const logSubject = cluster.names.jobSubject(name, "log");
    await Promise.all([
      (async () => {
        // Every value on the job's subject; into the record at most every PROGRESS_RECORD_MS, for hosts that join later.
        let lastWrite = 0;
        let writing = false;
        const { key } = this.#setup.signing;
        for await (const value of local.progressUpdates()) {
          // With a key, each value is signed: a host that trusts the workers takes no progress a stranger said.
          const sig = key === undefined
            ? undefined
            : await sign(key, signedProgress({ name, id: recordId, attempt, value, worker: id }));
          const message: ProgressMessage = {
            attempt,
            value,
            id: recordId,
            ...(sig === undefined ? {} : { worker: id, sig }),
          };
          cluster.nc.publish(progressSubject, encode(message));
          // 1 is the end (its record says so when it completes): no write that would race the result's.
          if (writing || value >= 1 || Date.now() - lastWrite < PROGRESS_RECORD_MS) continue;
          writing = true;
          lastWrite = Date.now();
          job.progressWrite = this.#write(job, (record) => {
            if (record.id !== recordId || record.state !== "ACTIVE" || record.worker !== id) return null;
            return record.attempts === attempt && value > record.progress ? { ...record, progress: value } : null;
          }).then(() => {}, (error) => emit({ type: "error", error })).finally(() => writing = false);
        }
      })(),
      (async () => {
        for await (const line of local.logs()) {
          cluster.nc.publish(logSubject, encode({ ...line, attempt, id: recordId } satisfies LogMessage));
        }
      })(),
    ]).catch((error) => emit({ type: "error", error }));
  }

  /** The attempt failed: hand it back, retry it after the policy's backoff, or drop and dead-letter it. */
  async #failed(job: Running, record: JobRecord, attempt: number, error: JobDroppedError): Promise<void> {
    const { cluster, emit, id } = this.#setup;
    const { msg } = job;
    const reason = job.cancelled ? "killed" : error.reason;
    const report = {
      jobName: record.name,
      reason,
      summary: error.summary,
      attempts: attempt,
      exitCode: error.exitCode,
      signal: error.signal,
      pythonError: error.pythonError,
      stderrTail: error.stderrTail.slice(-TAIL_LIMIT),
      stdoutTail: error.stdoutTail.slice(-TAIL_LIMIT),
      commandLine: error.commandLine,
      ...(error.blender === undefined ? {} : { blender: error.blender }),
    };
    // The report as the cluster sees it: the job's name (not this worker's local one) and this delivery's attempt.
    const said = new JobDroppedError(report).report;
    if (!job.handBack || job.cancelled) this.#failedCount++;
    this.#blocklist.note(scriptHash(record), String(record.spec.script?.name), reason);
    const failedHere = WORKER_FAILURES.has(reason) ? { failedOn: withFailedOn(record.failedOn, id) } : {};
    const timing = this.#timed(job, attempt, {
      endMs: Date.now(),
      outcome: reason,
      local: job.local?.timings,
      exit: exitAttributes(error),
    });
    const change = (next: (current: JobRecord) => JobRecord) =>
      this.#write(job, (current) => {
        return stillMine(current, record, id, attempt)
          ? { ...next(current), timings: withTiming(current.timings, timing), ...failedHere }
          : null;
      });
    if (job.handBack && !job.cancelled) {
      const handed = await change((current) => ({ ...current, state: "QUEUED", worker: null }));
      if (handed !== null) msg.nak();
      else if (await this.#maySettle(record)) msg.ack();
      emit({ type: "handed-back", name: record.name });
      return;
    }
    const { retry } = record.spec;
    if (reason !== "killed" && retry.on.includes(reason) && attempt < record.maxAttempts) {
      const retried = await change((current) => ({ ...current, state: "ACTIVE", worker: null, report }));
      const policy = { initialDelayMs: retry.delayMs, factor: retry.factor, maxDelayMs: retry.maxDelayMs };
      if (retried !== null) msg.nak(jittered(backoffMs(policy, attempt)));
      else if (await this.#maySettle(record)) msg.ack();
      emit({ type: "failed", name: record.name, attempt, report: said });
      return;
    }
    const written = await change((current) => ({
      ...current,
      state: "DROPPED",
      worker: id,
      attempts: attempt,
      report,
      deadLetter: reason !== "killed",
    }));
    if (written !== null && reason !== "killed") await publishDeadLetter(cluster, written);
    if (written !== null || await this.#maySettle(record)) msg.ack();
    emit({ type: "failed", name: record.name, attempt, report: said });
  }

  /**
   * After this delivery's write was refused: whether it may still ack its message. Not while another attempt of the
   * same submission is live (a redelivery's, or its host's requeue): an ack is by stream sequence, so it would take
   * the message from under that attempt.
   */
  async #maySettle(record: JobRecord): Promise<boolean> {
    const now = await readRecord(this.#setup.cluster.jobs, record.name).catch(() => null);
    return now === null || now.record.id !== record.id || ended(now.record);
  }
}

/**
 * The SHA-256 of a record's script, or `""` for a record without one (a record can say anything: such a job fails to
 * start, as its report says, rather than being declined or counted).
 */
function scriptHash(record: JobRecord): string {
  const sha256 = (record.spec.script as { sha256?: unknown } | undefined)?.sha256;
  return typeof sha256 === "string" ? sha256 : "";
}

/** Empty pulls in a row (each up to a second) after which a lane other than priority 0's closes. */
const LANE_IDLE_PULLS = 2;

/** How soon a lane that a higher one outranks asks again whether it still does (or when a job starts or ends), ms. */
const OUTRANKED_RECHECK_MS = 200;

/** How long a job waits here for a slot while every slot is taken before it goes back to the queue, ms. */
const HOLD_MS = 500;

/** A job goes back to the queue rather than wait or take a slot from a higher one on its first deliveries only. */
const DECLINING_DELIVERIES = 2;

/** How long a declined delivery waits before the server offers it again (to any worker), ms. */
const DECLINE_DELAY_MS = 250;

/** How an attempt ended, for its timing. */
interface AttemptEnd {
  readonly endMs: number;
  readonly outcome: AttemptTiming["outcome"];
  /** What the local backend timed, when the job reached it. */
  readonly local: JobTimings | undefined;
  readonly upload?: PhaseTiming;
  /** The exit code (`process.exit.code`) or signal (`bgproc.signal`) of its Blender, for its span. */
  readonly exit: Record<string, string | number>;
}

/** Whether `error` says the disk is full or failing (ENOSPC, EDQUOT, EIO, EROFS). */
function isDiskTrouble(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && ["ENOSPC", "EDQUOT", "EIO", "EROFS"].includes(code) ||
    /No space left on device|Disk quota exceeded|Read-only file system/.test(String(error));
}

/** A dropped attempt's Blender exit code or signal, as span attributes. */
function exitAttributes(error: JobDroppedError): Record<string, string | number> {
  if (error.signal !== null) return { "bgproc.signal": error.signal };
  return error.exitCode === null ? {} : { "process.exit.code": error.exitCode };
}

/** Now, in epoch milliseconds with fractions. */
function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Whether `current` is still this worker's running attempt of the job it claimed (`claimed`): the same submission,
 * not ended, the same attempt on this worker. Not so once its host took an overdue attempt back.
 */
function stillMine(current: JobRecord, claimed: JobRecord, worker: string, attempt: number): boolean {
  return current.id === claimed.id && current.state === "ACTIVE" && current.worker === worker &&
    current.attempts === attempt;
}

/** The named fields of `value` that it has. */
function pick<T extends object, K extends keyof T>(value: T, keys: readonly K[]): Pick<T, K> {
  const picked = {} as Pick<T, K>;
  for (const key of keys) if (value[key] !== undefined) picked[key] = value[key];
  return picked;
}

/** Ack `msg`; `null` (for `WorkerLoop.#vet`). */
function ack(msg: JsMsg): null {
  msg.ack();
  return null;
}

/**
 * The record a job's first delivery carries, at its revision: claimed with one write (its compare-and-set fails if
 * the record changed since, and the claim reads it then). Not for later deliveries: their record has moved on.
 */
function embeddedRecord(queued: QueueMessage, msg: JsMsg): Revisioned | undefined {
  if (msg.info.deliveryCount !== 1 || queued.record === undefined || queued.revision === undefined) return undefined;
  return { record: queued.record, revision: queued.revision };
}
