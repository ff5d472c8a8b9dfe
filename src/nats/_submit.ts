/** Putting a host's jobs into the cluster: files, record, queue message; and the queue consumers it needs. */

import { headers } from "@nats-io/transport-node";
import type { CheckedJob } from "../api/checked_job.ts";
import { type Cluster, ensureConsumer } from "./_connection.ts";
import type { Uploader } from "./_files.ts";
import {
  EMBEDDED_RECORD_LIMIT,
  encode,
  type JobRecord,
  type JobSpec,
  type QueueMessage,
  RECORD_VERSION,
  subjectToken,
} from "./_protocol.ts";
import { ended, isWrongRevision, mutateRecord, readRecord } from "./_records.ts";
import { jobSpec } from "./_spec.ts";
import { deliveriesFor } from "./_blocklist.ts";
import type { DependencyCache } from "../deps/cache.ts";
import { sign, signedJob, type SigningKey } from "./_signing.ts";

/** A job's place among its lane's jobs being queued: settles once its message was sent (or it failed). */
interface Place {
  readonly sent: PromiseWithResolvers<void>;
}

/** How long a job ready to be queued waits for the jobs of its lane added before it (uploading their files), ms. */
const EARLIER_WAIT_MS = 250;

/** `promise` settled, or `ms` passed. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([promise, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  } finally {
    clearTimeout(timer);
  }
}

/** What the submitter needs of the host's settings. */
export interface SubmitSettings {
  readonly workRoot: string;
  readonly retry: JobSpec["retry"];
  readonly ackWaitMs: number;
  /** Lists what a job's .blend uses, for its files to travel; `null`: only the .blend travels. */
  readonly dependencies: DependencyCache | null;
}

/** Submits one host's jobs. */
export class Submitter {
  readonly #cluster: Cluster;
  readonly #uploader: Uploader;
  readonly #settings: SubmitSettings;
  readonly #maxAttempts: () => number;
  readonly #consumers = new Map<string, Promise<string>>();
  readonly #key: SigningKey | undefined;
  /** Each lane's jobs being queued, in the order they were added. */
  readonly #order = new Map<string, Place[]>();

  constructor(
    cluster: Cluster,
    uploader: Uploader,
    settings: SubmitSettings,
    maxAttempts: () => number,
    key: SigningKey | undefined,
  ) {
    this.#cluster = cluster;
    this.#key = key;
    this.#uploader = uploader;
    this.#settings = settings;
    this.#maxAttempts = maxAttempts;
  }

  /**
   * Upload the job's files, create its record (the name must be free in the cluster), queue its message. A script
   * this host saw in the store before is asked for again while the record is written: the message waits for it.
   *
   * @returns The message's sequence in the queue's stream (for a kill while queued, a move, the abandoned-message
   * watch: the record says it only once a worker claimed it).
   */
  async put(job: CheckedJob, id: string, now: string, maxAttempts: number): Promise<number> {
    // Its lane's jobs are queued in the order they were added (first in, first out within a priority), except that
    // one whose files take longer than EARLIER_WAIT_MS to upload lets those after it go first.
    const lane = `${job.priority} ${job.requires.join(",")}`;
    const order = this.#order.get(lane) ?? [];
    this.#order.set(lane, order);
    const place: Place = { sent: Promise.withResolvers<void>() };
    order.push(place);
    try {
      return await this.#put(job, id, now, maxAttempts, place, order);
    } finally {
      place.sent.resolve();
      order.splice(order.indexOf(place), 1);
      if (order.length === 0 && this.#order.get(lane) === order) this.#order.delete(lane);
    }
  }

  async #put(
    job: CheckedJob,
    id: string,
    now: string,
    maxAttempts: number,
    place: Place,
    order: readonly Place[],
  ): Promise<number> {
    const { workRoot, retry, dependencies } = this.#settings;
    const { spec, stored } = await jobSpec(job, id, workRoot, this.#uploader, retry, dependencies);
    try {
      return await this.#queue(job, id, now, maxAttempts, spec, stored, place, order);
    } finally {
      await stored.catch(() => {}); // Settled on every path: no upload outlives its job's submission.
    }
  }

  /** Create the job's record, then queue its message once `stored` (its script in the store) settled. */
  async #queue(
    job: CheckedJob,
    id: string,
    now: string,
    maxAttempts: number,
    spec: JobSpec,
    stored: Promise<void>,
    place: Place,
    order: readonly Place[],
  ): Promise<number> {
    const { name } = job;
    const unsigned: JobRecord = {
      v: RECORD_VERSION,
      name,
      id,
      state: "QUEUED",
      worker: null,
      attempts: 0,
      maxAttempts,
      progress: 0,
      spec,
      queueSeq: 0,
      submittedAt: now,
      updatedAt: now,
      result: null,
      report: null,
      deadLetter: false,
      ...(job.trace === null ? {} : { trace: job.trace }),
      ...(job.priority === 0 ? {} : { priority: job.priority }),
    };
    const record = this.#key === undefined
      ? unsigned
      : { ...unsigned, jobSignature: await sign(this.#key, signedJob(unsigned)) };
    const { jobs, js, names } = this.#cluster;
    const taken = () => new Error(`Cannot add job as a job named '${name}' is queued or active in the cluster`);
    const token = subjectToken(name);
    const value = encode(record);
    let revision: number;
    try {
      revision = await jobs.create(token, value); // A new name: one round trip.
    } catch (error) {
      if (!isWrongRevision(error)) throw error;
      // An ended job's record is replaced only once the new job's script is known to be in the store.
      await stored;
      // The name has a record: an ended job's is replaced; a queued or active one's is taken.
      const existing = await readRecord(jobs, name);
      if (existing !== null && !ended(existing.record)) throw taken();
      try {
        revision = existing === null
          ? await jobs.create(token, value)
          : await jobs.update(token, value, existing.revision);
      } catch (again) {
        // Another host took the name in between; any other failure is what it is.
        if (isWrongRevision(again)) throw taken();
        throw again;
      }
    }
    let ack: { seq: number };
    try {
      // No worker sees the job before its message: its script is in the store by then.
      await stored;
      await this.#consumer(job.requires, job.priority);
      await within(Promise.all(order.slice(0, order.indexOf(place)).map((each) => each.sent.promise)), EARLIER_WAIT_MS);
      // nats.js sends it before this call returns: the next job of the lane may be sent now, before this one's ack.
      const publishing = js.publish(
        names.queueSubject(job.requires, job.priority),
        encode(firstMessage(record, revision, value.length)),
        {
          msgID: id,
          ...(job.trace === null ? {} : { headers: traceHeaders(job.trace) }),
        },
      );
      place.sent.resolve();
      ack = await publishing;
    } catch (error) {
      // Not queued (the server refused it, or the connection went): free the name, or it would stay QUEUED forever.
      await jobs.delete(subjectToken(name), { previousSeq: revision }).catch(() => {});
      throw error;
    }
    return ack.seq;
  }

  /**
   * Move a queued job to another priority: its record says the new priority and one more move, then its message is
   * queued again in the new lane and the old one removed (at `knownSeq`, where this host queued it, when the record
   * does not say). A worker that got the old message in between drops it, not the job (its `moves` is stale); one
   * that claimed the job first wins, and nothing moves.
   *
   * @returns The new message's place in the stream, `0` when the job was at that priority already, or `null` when it
   * was no longer queued.
   */
  async move(name: string, priority: number, knownSeq: number): Promise<number | null> {
    const { jobs, js, jsm, names } = this.#cluster;
    const current = await readRecord(jobs, name);
    if (current === null || current.record.state !== "QUEUED") return null;
    const { id } = current.record;
    const oldSeq = current.record.queueSeq > 0 ? current.record.queueSeq : knownSeq;
    if ((current.record.priority ?? 0) === priority) return 0;
    const moved = await mutateRecord(jobs, name, (record) => {
      if (record.id !== id || record.state !== "QUEUED") return null;
      return { ...record, priority, moves: (record.moves ?? 0) + 1 };
    }, current);
    if (moved === null) return null;
    const moves = moved.moves ?? 0;
    const message: QueueMessage = { name, id, moves, ...(moved.attempts === 0 ? {} : { spent: moved.attempts }) };
    // Failing from here, the record's message is stale or gone: the abandoned-message watch queues it again.
    await this.#consumer(moved.spec.requires, priority);
    const ack = await js.publish(names.queueSubject(moved.spec.requires, priority), encode(message), {
      msgID: `${id}-moved-${moves}`,
      ...(moved.trace === undefined ? {} : { headers: traceHeaders(moved.trace) }),
    });
    await mutateRecord(jobs, name, (record) => {
      if (record.id !== id || record.state !== "QUEUED" || (record.moves ?? 0) !== moves) return null;
      return { ...record, queueSeq: ack.seq };
    });
    if (oldSeq > 0) await jsm.streams.deleteMessage(names.jobsStream, oldSeq).catch(() => {});
    return ack.seq;
  }

  #consumer(requires: readonly string[], priority: number): Promise<string> {
    const key = `${requires.join(",")} ${priority}`;
    let pending = this.#consumers.get(key);
    if (pending === undefined) {
      const settings = { ackWaitMs: this.#settings.ackWaitMs, maxDeliver: deliveriesFor(this.#maxAttempts()) };
      pending = ensureConsumer(this.#cluster, requires, settings, priority);
      this.#consumers.set(key, pending);
      pending.catch(() => this.#consumers.delete(key));
    }
    return pending;
  }
}

/** The message headers that carry a job's trace context (W3C Trace Context). */
function traceHeaders(carrier: NonNullable<CheckedJob["trace"]>): ReturnType<typeof headers> {
  const set = headers();
  set.set("traceparent", carrier.traceparent);
  if (carrier.tracestate !== undefined) set.set("tracestate", carrier.tracestate);
  return set;
}

/**
 * A job's first queue message: with its record (`bytes` of JSON) at `revision` when small enough (a worker claims it
 * without a read).
 */
function firstMessage(record: JobRecord, revision: number, bytes: number): QueueMessage {
  const message: QueueMessage = { name: record.name, id: record.id };
  return bytes <= EMBEDDED_RECORD_LIMIT ? { ...message, revision, record } : message;
}
