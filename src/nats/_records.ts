/**
 * Reading and changing job records in the jobs bucket. Every change is a
 * compare-and-set on the record's revision, so two parties (a host killing,
 * a worker finishing; two workers after a redelivery) never both win: a
 * result recorded twice is recorded once.
 */

import type { KV } from "@nats-io/kv";
import { encode, type JobRecord, subjectToken } from "./_protocol.ts";
import { readJobRecord, Unreadable } from "./_wire.ts";

/** A record and the revision it was read at. */
export interface Revisioned {
  readonly record: JobRecord;
  readonly revision: number;
}

/** The job's record (its key is the name's `subjectToken`), or `null` when there is none (or it was removed). */
export async function readRecord(jobs: KV, name: string): Promise<Revisioned | null> {
  const entry = await jobs.get(subjectToken(name));
  if (entry === null || entry.operation !== "PUT") return null;
  const record = readJobRecord(entry.value);
  if (record instanceof Unreadable) return null; // The watches that saw it arrive reported it.
  return { record, revision: entry.revision };
}

/**
 * Change a record: `change` gets the current record and returns the new one,
 * or `null` to leave it as it is. Retried on a concurrent change.
 *
 * @param known The record as just read, to try first (saves a read; a stale one only costs a retry).
 * @returns The record written, or `null` when `change` declined (or there is no record).
 */
export async function mutateRecord(
  jobs: KV,
  name: string,
  change: (record: JobRecord) => JobRecord | null,
  known?: Revisioned,
): Promise<JobRecord | null> {
  return (await changeRecord(jobs, name, change, known))?.record ?? null;
}

/**
 * {@linkcode mutateRecord}, saying the revision written too: a writer that keeps it writes next without a read.
 *
 * @returns The record written and its revision, or `null` when `change` declined (or there is no record).
 */
export async function changeRecord(
  jobs: KV,
  name: string,
  change: (record: JobRecord) => JobRecord | null,
  known?: Revisioned,
): Promise<Revisioned | null> {
  for (let tries = 0; tries < 20; tries++) {
    const current = tries === 0 && known !== undefined ? known : await readRecord(jobs, name);
    if (current === null) return null;
    const next = change(current.record);
    if (next === null) return null;
    try {
      const value = encode({ ...next, updatedAt: new Date().toISOString() });
      return { record: next, revision: await jobs.update(subjectToken(name), value, current.revision) };
    } catch (error) {
      if (!isWrongRevision(error)) throw error;
    }
  }
  throw new Error(`Cannot change the record of job '${name}': it kept changing under us`);
}

/** Whether a KV write failed because the key changed (or exists, for create) since it was read. */
export function isWrongRevision(error: unknown): boolean {
  return error instanceof Error && /wrong last sequence|10071/i.test(`${error.message} ${String(error.cause ?? "")}`);
}

/** Whether a record's job has ended. */
export function ended(record: { readonly state: JobRecord["state"] }): boolean {
  return record.state === "COMPLETED" || record.state === "DROPPED";
}
