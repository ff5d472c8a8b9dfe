/**
 * Dead letters: a job that exhausted its attempts is dropped, and a copy of
 * its record goes to the namespace's dead-letter stream, where it can be
 * listed. Server 2.9 keeps a message that reached MaxDeliver in the work
 * queue and only publishes an advisory: every host and worker listens for it,
 * drops the job (one of them wins the record's compare-and-set), dead-letters
 * it, and removes the message from the work queue.
 */

import type { Subscription } from "@nats-io/transport-node";
import type { JobDroppedDetails } from "../errors.ts";
import { detailsBeforeBlender } from "../_dropped.ts";
import type { Cluster } from "./_connection.ts";
import { readMaxDeliveries, readQueueMessage, Unreadable } from "./_wire.ts";
import type { UnreadableDesk, UnreadableMessage } from "./_unreadable.ts";
import { encode, type JobRecord, type QueueMessage } from "./_protocol.ts";
import { ended, mutateRecord } from "./_records.ts";

/** One job in the dead-letter stream. */
export interface DeadLetter {
  /** The job's name. */
  readonly name: string;
  /** The report it was dropped with. */
  readonly report: JobDroppedDetails;
  /** How many attempts it had. */
  readonly attempts: number;
  /** When it was dead-lettered. */
  readonly at: Date;
}

/** A job's dead letter, as published. */
interface DeadLetterMessage {
  readonly name: string;
  readonly id: string;
  readonly report: JobDroppedDetails;
  readonly attempts: number;
  readonly at: string;
}

/** Publish a dropped job's record to the dead-letter stream. */
export async function publishDeadLetter(cluster: Cluster, record: JobRecord): Promise<void> {
  if (record.report === null) return;
  const message: DeadLetterMessage = {
    name: record.name,
    id: record.id,
    report: record.report,
    attempts: record.attempts,
    at: new Date().toISOString(),
  };
  await cluster.js.publish(cluster.names.deadSubject(record.name), encode(message));
}

/** The report of a job whose worker vanished (stopped heartbeating) on its last attempt. */
export function lostReport(record: JobRecord, attempts: number): JobDroppedDetails {
  const previous = record.report;
  return {
    jobName: record.name,
    reason: "crashed",
    summary: `its worker${
      record.worker === null ? "" : ` ${record.worker}`
    } stopped heartbeating on attempt ${attempts} of ${record.maxAttempts}, and no attempt is left`,
    attempts,
    exitCode: null,
    signal: null,
    pythonError: previous?.pythonError ?? null,
    stderrTail: previous?.stderrTail ?? "",
    stdoutTail: previous?.stdoutTail ?? "",
    commandLine: previous?.commandLine ?? "",
  };
}

/** Drop a job whose worker was lost with no attempt left, and dead-letter it (once, whoever calls). */
export async function dropLost(cluster: Cluster, message: QueueMessage, attempts?: number): Promise<void> {
  const written = await mutateRecord(cluster.jobs, message.name, (record) => {
    if (record.id !== message.id || ended(record)) return null;
    // Attempts are the record's claims (a worker may have declined deliveries), unless the caller counted them.
    const spent = attempts ?? record.attempts;
    return { ...record, state: "DROPPED", attempts: spent, report: lostReport(record, spent), deadLetter: true };
  });
  if (written !== null) await publishDeadLetter(cluster, written);
}

/** Drop a job no trusted host signed (it never ran), and dead-letter it with why (once, whoever calls). */
export async function dropUntrusted(
  cluster: Cluster,
  record: JobRecord,
  why: string,
  attempt: number,
  worker: string,
): Promise<void> {
  const report = detailsBeforeBlender(record.name, "start-failed", `it was not run: ${why}`, attempt);
  const written = await mutateRecord(cluster.jobs, record.name, (current) => {
    if (current.id !== record.id || ended(current)) return null;
    return { ...current, state: "DROPPED", worker, attempts: attempt, report, deadLetter: true };
  });
  if (written !== null) await publishDeadLetter(cluster, written);
}

/**
 * Listen for the server's max-deliveries advisories of the work queue.
 *
 * @param removes Whether to remove the given-up message from the queue too (hosts do; a worker's role may not).
 * @returns The subscription (unsubscribe or drain it to stop).
 */
export function listenMaxDeliveries(
  cluster: Cluster,
  unreadable: UnreadableDesk,
  onError: (error: unknown) => void,
  removes: boolean,
): Subscription {
  return cluster.nc.subscribe(cluster.names.maxDeliveriesAdvisory, {
    callback: (error, msg) => {
      if (error !== null) return onError(error);
      const advisory = readMaxDeliveries(msg.data);
      if (advisory instanceof Unreadable) return unreadable.report(msg.subject, advisory, msg.data); // Not the server's.
      void (async () => {
        const stored = await cluster.jsm.streams.getMessage(cluster.names.jobsStream, { seq: advisory.stream_seq })
          .catch(() => null);
        const queued = stored === null ? null : readQueueMessage(stored.data);
        if (queued === null || queued instanceof Unreadable) return; // The worker that took it reported it.
        await dropLost(cluster, queued);
        if (removes) {
          await cluster.jsm.streams.deleteMessage(cluster.names.jobsStream, advisory.stream_seq).catch(() => {});
        }
      })().catch(onError);
    },
  });
}

/** Every job in the dead-letter stream, oldest first (a message there that is not a job's dead letter is skipped). */
export async function listDeadLetters(cluster: Cluster): Promise<DeadLetter[]> {
  const letters: DeadLetter[] = [];
  for await (const { subject, value } of deadStream(cluster)) {
    if (subject === cluster.names.unreadableSubject || !isObject(value)) continue;
    const { name, report, attempts, at } = value;
    if (typeof name !== "string" || !isObject(report) || typeof attempts !== "number" || typeof at !== "string") {
      continue;
    }
    letters.push({ name, report: report as unknown as JobDroppedDetails, attempts, at: new Date(at) });
  }
  return letters;
}

/** Every unreadable message in the dead-letter stream, oldest first. */
export async function listUnreadable(cluster: Cluster): Promise<UnreadableMessage[]> {
  const letters: UnreadableMessage[] = [];
  for await (const { subject, value } of deadStream(cluster)) {
    if (subject !== cluster.names.unreadableSubject || !isObject(value)) continue;
    const { problem, excerpt, bytes, seenBy, at } = value;
    if (typeof value.subject !== "string" || typeof problem !== "string" || typeof excerpt !== "string") continue;
    if (typeof bytes !== "number" || typeof seenBy !== "string" || typeof at !== "string") continue;
    letters.push({ subject: value.subject, problem, excerpt, bytes, seenBy, at: new Date(at) });
  }
  return letters;
}

/** The dead-letter stream's messages, each parsed as JSON (`undefined` where it is not). */
async function* deadStream(cluster: Cluster): AsyncGenerator<{ subject: string; value: unknown }> {
  const info = await cluster.jsm.streams.info(cluster.names.deadStream);
  if (info.state.messages === 0) return;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const stored = await cluster.jsm.streams.getMessage(cluster.names.deadStream, { seq }).catch(() => null);
    if (stored === null) continue;
    let value: unknown;
    try {
      value = stored.json();
    } catch {
      value = undefined;
    }
    yield { subject: stored.subject, value };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
