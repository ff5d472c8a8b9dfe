/**
 * Queued jobs whose queue message is gone: a client took the message from the work queue and acked it without
 * running the job (a bug, or a hostile client with queue access), so no worker will ever get it and the job would
 * wait forever. Each host looks at its own queued jobs every `ackWaitMs` (at most {@linkcode CHECKS_PER_ROUND} of
 * them a round, oldest first): a record still QUEUED whose message was missing at two looks in a row is queued
 * again, with a new message (deduplicated across hosts by the server), and the record follows it.
 */

import type { Cluster } from "./_connection.ts";
import { encode, type QueueMessage } from "./_protocol.ts";
import { mutateRecord, readRecord } from "./_records.ts";

/** Queued jobs looked at per round, at most. */
export const CHECKS_PER_ROUND = 50;

/** One host's watch. */
export class AbandonedWatch {
  readonly #cluster: Cluster;
  readonly #queued: () => readonly { readonly name: string; readonly seq: number }[];
  /** How many jobs this watch queued again. */
  requeued = 0;
  /** `name id seq` of records whose message was missing at the last look. */
  #missing = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #round: Promise<void> = Promise.resolve();

  /**
   * `queued()`: this host's queued jobs, oldest first, each with where this host queued its message (a record says
   * it only once it was queued again here, or claimed).
   */
  constructor(cluster: Cluster, queued: () => readonly { readonly name: string; readonly seq: number }[]) {
    this.#cluster = cluster;
    this.#queued = queued;
  }

  /** Look every `everyMs`. */
  start(everyMs: number): void {
    this.#timer = setInterval(() => {
      this.#round = this.#round.then(() => this.#look()).catch(() => {});
    }, Math.max(1_000, everyMs));
  }

  /** Stop looking; settles once the round under way has ended. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#round;
  }

  async #look(): Promise<void> {
    const { jobs, jsm, names } = this.#cluster;
    const missing = new Set<string>();
    for (const { name, seq } of this.#queued().slice(0, CHECKS_PER_ROUND)) {
      const current = await readRecord(jobs, name);
      const queueSeq = current?.record.queueSeq || seq;
      if (current === null || current.record.state !== "QUEUED" || queueSeq <= 0) continue;
      const { id, spec, attempts, priority, moves } = current.record;
      // `null` (or, in some client versions, "no message found") when it was acked; any other failure: look later.
      const there = await jsm.streams.getMessage(names.jobsStream, { seq: queueSeq }).then(
        (stored) => stored !== null,
        (error: Error) => !/no message found|not found/i.test(error.message),
      );
      if (there) continue;
      const key = `${name} ${id} ${queueSeq}`;
      if (!this.#missing.has(key)) {
        missing.add(key); // Once may be a message between a worker's ack and its record's write: look again.
        continue;
      }
      const ack = await this.#cluster.js.publish(
        names.queueSubject(spec.requires, priority ?? 0),
        encode({ name, id, spent: attempts, ...(moves === undefined ? {} : { moves }) } satisfies QueueMessage),
        {
          msgID: `${id}-requeued-${queueSeq}`,
        },
      );
      const written = await mutateRecord(jobs, name, (record) => {
        if (record.id !== id || record.state !== "QUEUED" || (record.queueSeq || seq) !== queueSeq) return null;
        if ((record.moves ?? 0) !== (moves ?? 0)) return null; // Moved meanwhile: its new message is queued.
        return { ...record, queueSeq: ack.seq };
      });
      if (written !== null) this.requeued++;
    }
    this.#missing = missing;
  }
}
