/**
 * A job's `timeout`, measured by the host that added it. A worker ends its own attempts at their timeout; one that
 * does not (hung, or hostile: it keeps the job's message alive with heartbeats and never ends it) would hold the
 * job forever. Each host times its own running jobs: an attempt still running on the same worker `graceMs` past its
 * timeout is ended here as `"timed-out"`. Its record is taken back first (so the worker can no longer end it), the
 * worker is told to kill it, and then the job is queued again as a new message that carries the attempts spent, or
 * dropped when no attempt is left or `retry.on` leaves out `"timed-out"`.
 */

import { detailsBeforeBlender } from "../_dropped.ts";
import type { Cluster } from "./_connection.ts";
import { publishDeadLetter } from "./_dead_letter.ts";
import { encode, type JobRecord, type QueueMessage } from "./_protocol.ts";
import { mutateRecord } from "./_records.ts";

/** The longest delay a timer takes (2^31 - 1 ms); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One attempt being timed: the record's id, attempt and worker when it was seen running. */
interface Timed {
  readonly key: string;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** One host's timing of its running jobs. */
export class OverdueWatch {
  readonly #cluster: Cluster;
  readonly #graceMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #timed = new Map<string, Timed>();
  readonly #expiring = new Set<Promise<void>>();
  #closed = false;
  /** How many attempts this watch ended. */
  expired = 0;

  /** `graceMs`: how long past its timeout an attempt may run before the host ends it. */
  constructor(cluster: Cluster, graceMs: number, onError: (error: unknown) => void) {
    this.#cluster = cluster;
    this.#graceMs = graceMs;
    this.#onError = onError;
  }

  /** Time `record`'s attempt if it is running on a worker and has a timeout; stop timing it otherwise. */
  see(record: JobRecord): void {
    if (this.#closed) return;
    const { name, id, attempts, worker, state, spec } = record;
    const key = `${id} ${attempts} ${worker}`;
    const timed = this.#timed.get(name);
    if (timed?.key === key) return;
    if (timed !== undefined) clearTimeout(timed.timer);
    this.#timed.delete(name);
    if (state !== "ACTIVE" || worker === null || spec.timeoutMs <= 0) return;
    this.#arm(record, key, Date.now() + spec.timeoutMs + this.#graceMs);
  }

  /** Wait until `deadline` (in steps a timer can take: it fires at once past about 24.8 days), then expire. */
  #arm(record: JobRecord, key: string, deadline: number): void {
    const timer = setTimeout(() => {
      this.#timed.delete(record.name);
      if (Date.now() < deadline) return this.#arm(record, key, deadline);
      const expiring = this.#expire(record).catch(this.#onError);
      this.#expiring.add(expiring);
      void expiring.finally(() => this.#expiring.delete(expiring));
    }, Math.min(deadline - Date.now(), MAX_TIMER_MS));
    this.#timed.set(record.name, { key, timer });
  }

  /** Stop timing the job `name` (it ended, or was forgotten). */
  forget(name: string): void {
    clearTimeout(this.#timed.get(name)?.timer);
    this.#timed.delete(name);
  }

  /** Stop timing; settles once the endings under way are written. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const { timer } of this.#timed.values()) clearTimeout(timer);
    this.#timed.clear();
    await Promise.allSettled([...this.#expiring]);
  }

  /** End the attempt `seen` if its record still says it runs on the same worker. */
  async #expire(seen: JobRecord): Promise<void> {
    const { jobs, js, jsm, nc, names } = this.#cluster;
    const { name, id, attempts, worker, spec, maxAttempts } = seen;
    const seconds = spec.timeoutMs / 1000;
    const summary = `it ran past its timeout of ${seconds} s on worker ${worker}, which did not end it ` +
      `(timed by the host; ended ${this.#graceMs / 1000} s after the timeout)`;
    const report = detailsBeforeBlender(name, "timed-out", summary, attempts);
    const again = attempts < maxAttempts && spec.retry.on.includes("timed-out");
    const same = (record: JobRecord) =>
      record.id === id && record.state === "ACTIVE" && record.worker === worker && record.attempts === attempts;
    const taken = await mutateRecord(jobs, name, (record) => {
      if (!same(record)) return null;
      return again
        ? { ...record, state: "QUEUED", worker: null, report }
        : { ...record, state: "DROPPED", report, deadLetter: true };
    });
    if (taken === null) return; // It moved on in between.
    this.expired++;
    // The record is no longer the worker's: it cannot end the job now. Tell it to kill what it runs.
    await nc.request(names.jobSubject(name, "cancel"), encode({}), { timeout: 2000 }).catch(() => {});
    if (!again) {
      await publishDeadLetter(this.#cluster, taken);
      return;
    }
    if (seen.queueSeq > 0) await jsm.streams.deleteMessage(names.jobsStream, seen.queueSeq).catch(() => {});
    const ack = await js.publish(
      names.queueSubject(spec.requires, seen.priority ?? 0),
      encode(
        {
          name,
          id,
          spent: attempts,
          ...(seen.moves === undefined ? {} : { moves: seen.moves }),
        } satisfies QueueMessage,
      ),
      { msgID: `${id}-overdue-${attempts}` },
    );
    await mutateRecord(jobs, name, (record) => {
      // Not once its host moved it meanwhile (`setPriority`): its new message is the one to point at.
      if (record.id !== id || record.state !== "QUEUED" || record.worker !== null) return null;
      return (record.moves ?? 0) === (seen.moves ?? 0) ? { ...record, queueSeq: ack.seq } : null;
    });
  }
}
