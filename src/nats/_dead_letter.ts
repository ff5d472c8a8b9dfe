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
import type { Cluster } from "./_connection.ts";
import { readMaxDeliveries, readQueueMessage } from "./_wire.ts";
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
export async function dropLost(cluster: Cluster, message: QueueMessage, attempts: number): Promise<void> {
  const written = await mutateRecord(cluster.jobs, message.name, (record) => {
    if (record.id !== message.id || ended(record)) return null;
    return { ...record, state: "DROPPED", attempts, report: lostReport(record, attempts), deadLetter: true };
  });
  if (written !== null) await publishDeadLetter(cluster, written);
}

/**
 * Listen for the server's max-deliveries advisories of the work queue.
 *
 * @returns The subscription (unsubscribe or drain it to stop).
 */
export function listenMaxDeliveries(cluster: Cluster, onError: (error: unknown) => void): Subscription {
  return cluster.nc.subscribe(cluster.names.maxDeliveriesAdvisory, {
    callback: (error, msg) => {
      if (error !== null) return onError(error);
      const advisory = readMaxDeliveries(msg.data);
      if (advisory === null) return; // Not the server's advisory.
      void (async () => {
        const stored = await cluster.jsm.streams.getMessage(cluster.names.jobsStream, { seq: advisory.stream_seq })
          .catch(() => null);
        const queued = stored === null ? null : readQueueMessage(stored.data);
        if (queued === null) return;
        await dropLost(cluster, queued, advisory.deliveries);
        await cluster.jsm.streams.deleteMessage(cluster.names.jobsStream, advisory.stream_seq).catch(() => {});
      })().catch(onError);
    },
  });
}

/** Every job in the dead-letter stream, oldest first. */
export async function listDeadLetters(cluster: Cluster): Promise<DeadLetter[]> {
  const info = await cluster.jsm.streams.info(cluster.names.deadStream);
  const letters: DeadLetter[] = [];
  if (info.state.messages === 0) return letters;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const stored = await cluster.jsm.streams.getMessage(cluster.names.deadStream, { seq }).catch(() => null);
    if (stored === null) continue;
    const message = stored.json<DeadLetterMessage>();
    letters.push({ name: message.name, report: message.report, attempts: message.attempts, at: new Date(message.at) });
  }
  return letters;
}
