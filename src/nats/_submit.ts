/** Putting a host's jobs into the cluster: files, record, queue message; and the queue consumers it needs. */

import { headers } from "@nats-io/transport-node";
import type { CheckedJob } from "../api/checked_job.ts";
import { type Cluster, ensureConsumer } from "./_connection.ts";
import type { Uploader } from "./_files.ts";
import { encode, type JobRecord, type JobSpec, type QueueMessage, RECORD_VERSION, subjectToken } from "./_protocol.ts";
import { ended, isWrongRevision, mutateRecord, readRecord } from "./_records.ts";
import { jobSpec } from "./_spec.ts";
import { deliveriesFor } from "./_blocklist.ts";
import type { DependencyCache } from "../deps/cache.ts";
import { sign, signedJob, type SigningKey } from "./_signing.ts";

/** How long after queueing a job its host writes the message's place into a record still queued, ms. */
const QUEUE_SEQ_DELAY_MS = 50;

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
   * Upload the job's files, create its record (the name must be free in the cluster), queue its message.
   *
   * @returns The message's sequence in the queue's stream (for {@linkcode Submitter.notePlace}).
   */
  async put(job: CheckedJob, id: string, now: string, maxAttempts: number): Promise<number> {
    const { name } = job;
    const { workRoot, retry, dependencies } = this.#settings;
    const spec = await jobSpec(job, id, workRoot, this.#uploader, retry, dependencies);
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
    };
    const record = this.#key === undefined
      ? unsigned
      : { ...unsigned, jobSignature: await sign(this.#key, signedJob(unsigned)) };
    const { jobs, js, names } = this.#cluster;
    const taken = () => new Error(`Cannot add job as a job named '${name}' is queued or active in the cluster`);
    const token = subjectToken(name);
    let revision: number;
    try {
      revision = await jobs.create(token, encode(record)); // A new name: one round trip.
    } catch (error) {
      if (!isWrongRevision(error)) throw error;
      // The name has a record: an ended job's is replaced; a queued or active one's is taken.
      const existing = await readRecord(jobs, name);
      if (existing !== null && !ended(existing.record)) throw taken();
      try {
        revision = existing === null
          ? await jobs.create(token, encode(record))
          : await jobs.update(token, encode(record), existing.revision);
      } catch (again) {
        // Another host took the name in between; any other failure is what it is.
        if (isWrongRevision(again)) throw taken();
        throw again;
      }
    }
    let ack: { seq: number };
    try {
      await this.#consumer(job.requires);
      ack = await js.publish(names.queueSubject(job.requires), encode({ name, id } satisfies QueueMessage), {
        msgID: id,
        ...(job.trace === null ? {} : { headers: traceHeaders(job.trace) }),
      });
    } catch (error) {
      // Not queued (the server refused it, or the connection went): free the name, or it would stay QUEUED forever.
      await jobs.delete(subjectToken(name), { previousSeq: revision }).catch(() => {});
      throw error;
    }
    return ack.seq;
  }

  /**
   * Write the place of the job's message (`seq`) into its record, for a kill while queued and the abandoned-message
   * check. A free worker writes it when it claims the job, so this waits a moment first and writes only into a record
   * still queued: the two writes do not collide on the pickup's path.
   */
  async notePlace(name: string, id: string, seq: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, QUEUE_SEQ_DELAY_MS));
    await mutateRecord(this.#cluster.jobs, name, (current) => {
      return current.id === id && current.state === "QUEUED" && current.queueSeq === 0
        ? { ...current, queueSeq: seq }
        : null;
    });
  }

  #consumer(requires: readonly string[]): Promise<string> {
    const key = requires.join(",");
    let pending = this.#consumers.get(key);
    if (pending === undefined) {
      const settings = { ackWaitMs: this.#settings.ackWaitMs, maxDeliver: deliveriesFor(this.#maxAttempts()) };
      pending = ensureConsumer(this.#cluster, requires, settings);
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
