/**
 * Killing a cluster job from a host: a queued one is dropped in its record and its message removed from the queue (by
 * the host that added it, which knows where it is, when another host killed it; else a worker drops it); a running
 * one is cancelled on its worker (which kills its Blender's process group and records the end); one no worker has
 * (between attempts, or its worker died) is dropped in its record here, so a redelivery is acked unrun.
 */

import type { DropReason, JobDroppedDetails } from "../errors.ts";
import type { Cluster } from "./_connection.ts";
import { encode, type JobRecord } from "./_protocol.ts";
import { ended, mutateRecord, readRecord } from "./_records.ts";

/**
 * Kill submission `id` of job `name`; returns the record this host wrote, if it wrote one (else the worker will).
 * `knownSeq`: where this host queued it, for a record that does not say yet.
 */
export async function killInCluster(
  cluster: Cluster,
  name: string,
  id: string,
  knownSeq = 0,
): Promise<JobRecord | null> {
  const { jobs, jsm, nc, names } = cluster;
  const removed = await mutateRecord(jobs, name, (record) => {
    if (record.id !== id || record.state !== "QUEUED") return null;
    return { ...record, state: "DROPPED", report: killReport(record, "killed while queued") };
  });
  if (removed !== null) {
    const seq = removed.queueSeq > 0 ? removed.queueSeq : knownSeq;
    if (seq > 0) await jsm.streams.deleteMessage(names.jobsStream, seq).catch(() => {});
    return removed;
  }
  const current = await readRecord(jobs, name);
  if (current === null || current.record.id !== id || ended(current.record)) return null;
  if (current.record.worker !== null) {
    const heard = await nc.request(names.jobSubject(name, "cancel"), encode({}), { timeout: 2000 })
      .then(() => true, () => false);
    if (heard) return null;
  }
  return await mutateRecord(jobs, name, (record) => {
    if (record.id !== id || ended(record)) return null;
    return { ...record, state: "DROPPED", report: killReport(record, "killed between attempts") };
  });
}

function killReport(record: JobRecord, summary: string): JobDroppedDetails {
  return {
    jobName: record.name,
    reason: "killed" satisfies DropReason,
    summary,
    attempts: record.attempts,
    exitCode: null,
    signal: null,
    pythonError: null,
    stderrTail: record.report?.stderrTail ?? "",
    stdoutTail: record.report?.stdoutTail ?? "",
    commandLine: record.report?.commandLine ?? "",
  };
}
