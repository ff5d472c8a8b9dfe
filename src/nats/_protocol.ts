/**
 * The wire contract between hosts and workers in one namespace: stream,
 * bucket and subject names, the job record kept in KV, and the messages on
 * per-job subjects. Hosts and workers of one namespace must agree on it.
 */

import { nameOfToken as nameOfNameToken, nameToken } from "../_name_token.ts";
import { createHash } from "node:crypto";
import type { JobDroppedDetails } from "../errors.ts";
import type { DataBlockInfo, JsonObject } from "../types.ts";
import type { TraceCarrier } from "../_telemetry.ts";
import type { AttemptTiming } from "../timings.ts";

/** Version of the job record; a reader rejects records of another version. */
export const RECORD_VERSION = 1;

/** A file in the object store: its SHA-256 (the object's name), its original base name and size. */
export interface FileRef {
  readonly sha256: string;
  readonly name: string;
  readonly size: number;
}

/** Retry policy a job carries to the worker (the worker applies it). */
export interface RetrySpec {
  readonly on: readonly string[];
  readonly delayMs: number;
  readonly factor: number;
  readonly maxDelayMs: number;
}

/** What a worker needs to run a job. */
export interface JobSpec {
  readonly script: FileRef;
  readonly blendFile: FileRef | null;
  readonly passedData: JsonObject;
  /** When `passedData` was too large for a KV value: its JSON file in the object store (`passedData` is `{}`). */
  readonly passedDataFile?: FileRef;
  readonly args: readonly string[];
  readonly timeoutMs: number;
  readonly passedDataBlocks: { readonly file: FileRef; readonly blocks: Record<string, string[]> } | null;
  readonly requires: readonly string[];
  readonly retry: RetrySpec;
  /**
   * How the worker's Blender runs the job: `AddJobOptions` passed to the worker's own manager as they are
   * (`factoryStartup`, `addons`, `progress`), checked by the host first. Absent in records of older hosts.
   */
  readonly runOptions?: RunOptions;
  /** `AddJobOptions.inputs`: files the worker copies into the job's folder. Absent in records of older hosts. */
  readonly inputs?: readonly FileRef[];
  /**
   * The files the job's .blend (and its script) use, where they are on the host: the worker lays them out, with the
   * .blend and the script, at the same paths under a folder of its own, so that every path resolves there. Absent
   * for a job without a .blend, and in records of older hosts; a file when too large for the record.
   */
  readonly layout?: Layout;
  readonly layoutFile?: FileRef;
  /** Warnings for the job's output (a file it uses is missing, its dependencies could not be listed). */
  readonly notes?: readonly string[];
}

/** Where the job's files were on the host (absolute paths), and each of its dependencies. */
export interface Layout {
  readonly blendPath: string;
  readonly scriptPath: string;
  readonly files: readonly { readonly path: string; readonly file: FileRef }[];
}

/** The job options that travel to the worker as they are (each JSON, each checked by the host). */
export interface RunOptions {
  readonly factoryStartup?: boolean;
  readonly addons?: readonly string[];
  readonly progress?: "auto" | "script" | "render";
}

/** One output file of a completed job, as recorded. */
export interface RecordedOutput {
  readonly file: FileRef;
  readonly path: string;
  readonly bytes: number;
  readonly kind: "image" | "video" | "blend" | "other";
}

/** A worker's times of one attempt, epoch milliseconds with fractions (`performance.timeOrigin + now()`). */
export interface WorkerTimes {
  /** The job's queue message arrived. */
  readonly received: number;
  /** Its record said ACTIVE on this worker (files not fetched yet). */
  readonly claimed: number;
  /** Its result was ready to be written (outputs uploaded). */
  readonly recorded: number;
}

/** A completed job's result, as recorded. */
export interface RecordedResult {
  readonly pythonData: JsonObject;
  readonly dataBlocks: { readonly file: FileRef; readonly blocks: Record<string, readonly DataBlockInfo[]> } | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly attempts: number;
  readonly startedAt: string;
  readonly endedAt: string;
  readonly durationMs: number;
  readonly commandLine: string;
  readonly worker: string;
  /** When the worker got the job's message, claimed its record and had its result ready (epoch ms, fractional). */
  readonly times?: WorkerTimes;
  /**
   * The files the job wrote (`JobResult.outputs`), in the object store: `path` relative to the job's outputs
   * folder on the worker (a file Blender saved elsewhere is `saved/<its name>`). Absent in older records.
   */
  readonly outputs?: readonly RecordedOutput[];
  /**
   * When `pythonData`, `stdout` and `stderr` were too large for a KV value:
   * the JSON file holding them in the object store (they are empty here then).
   */
  readonly overflow?: FileRef;
  /** When the `outputs`' list was too large for a KV value: it, as a JSON file in the object store. */
  readonly outputsFile?: FileRef;
}

/** Above this many bytes of JSON, a result's data travels through the object store, not the record. */
export const RECORD_INLINE_LIMIT = 256 * 1024;

/** The largest `outputsFile` a host reads: 10,000 outputs with paths of a few kilobytes each. */
export const OUTPUTS_FILE_LIMIT = 64 * 1024 * 1024;

/** The state a job is in, as recorded: the local states. */
export type RecordState = "QUEUED" | "ACTIVE" | "COMPLETED" | "DROPPED";

/** A signature in a record (`_signing.ts`): which key (its id) and the signature itself, both base64. */
export interface Signature {
  readonly key: string;
  readonly sig: string;
}

/** One job, as the jobs bucket holds it under its name: the source of truth. */
export interface JobRecord {
  readonly v: number;
  readonly name: string;
  /** One submission of this name: a message of another submission is stale. */
  readonly id: string;
  readonly state: RecordState;
  /** The worker running it (ACTIVE), or that ended it; `null` while queued or waiting for a retry. */
  readonly worker: string | null;
  /** Attempts started: claims by workers (a delivery a worker declines is none). */
  readonly attempts: number;
  readonly maxAttempts: number;
  readonly progress: number;
  readonly spec: JobSpec;
  /** The work-queue stream's sequence of the job's message (to remove a queued job). */
  readonly queueSeq: number;
  readonly submittedAt: string;
  readonly updatedAt: string;
  readonly result: RecordedResult | null;
  /** The last failure (also while a retry waits), or why it was dropped. */
  readonly report: JobDroppedDetails | null;
  /** Whether the job went to the dead-letter subject. */
  readonly deadLetter: boolean;
  /** The submitting host's signature of what runs (`_signing.ts`), when it signs jobs. */
  readonly jobSignature?: Signature;
  /** The worker's signature of a completed job's end (`_signing.ts`), when it signs results. */
  readonly endSignature?: Signature;
  /**
   * The job's span on its host (W3C Trace Context), the parent of its attempts' spans wherever they run; absent
   * without telemetry. Its queue message carries it too (header `traceparent`); a requeued message does not.
   */
  readonly trace?: TraceCarrier;
  /** The attempts that ended, as their workers timed them (at most {@linkcode MAX_RECORDED_TIMINGS}, the last kept). */
  readonly timings?: readonly AttemptTiming[];
  /** The workers an attempt failed on through no fault of the script (crashed, timed out, could not start). */
  readonly failedOn?: readonly string[];
  /** Its priority among queued jobs: its queue message's lane (`Names.queueSubject`). Absent: 0. */
  readonly priority?: number;
  /**
   * How often its host moved it to another lane (`setPriority`): a queue message of another count is stale, and a
   * worker that gets one drops the message, not the job. Absent: 0.
   */
  readonly moves?: number;
}

/** The most attempt timings a record keeps. */
export const MAX_RECORDED_TIMINGS = 16;

/** The work-queue message: the record is the truth, this only points at it. */
export interface QueueMessage {
  readonly name: string;
  readonly id: string;
  /**
   * Attempts spent before this message: a job queued again by its host (an overdue attempt, a lost message). Workers
   * count attempts in the record; this only tells a first pickup from a requeued one.
   */
  readonly spent?: number;
  /** `JobRecord.moves` when this message was queued (absent: 0). */
  readonly moves?: number;
  /**
   * The job's record as its host created it, and that write's revision (a record of at most
   * {@linkcode EMBEDDED_RECORD_LIMIT} bytes, in a job's first message): a worker claims it with one write, a
   * compare-and-set at that revision, instead of reading it first. Any change since makes the write fail, and the
   * worker reads the record then.
   */
  readonly revision?: number;
  readonly record?: JobRecord;
}

/** The largest record (JSON bytes) a queue message carries (`QueueMessage.record`). */
export const EMBEDDED_RECORD_LIMIT = 16 * 1024;

/** A progress message on a job's progress subject. */
export interface ProgressMessage {
  readonly attempt: number;
  readonly value: number;
  /** The submission (record id) it is about; absent from older workers. */
  readonly id?: string;
  /** The worker that says it, and its signature of `signedProgress` (when it has a signing key). */
  readonly worker?: string;
  readonly sig?: Signature;
}

/** A log line message on a job's log subject. */
export interface LogMessage {
  readonly attempt: number;
  readonly stream: "stdout" | "stderr";
  readonly line: string;
  /** The submission (record id) it is about; absent from older workers. */
  readonly id?: string;
  /** The worker that says it, and its signature of `signedProgress` (when it has a signing key). */
  readonly worker?: string;
  readonly sig?: Signature;
}

/** A worker's advertisement in the workers bucket, refreshed every heartbeat. */
export interface WorkerInfo {
  /** Unique per worker process: `<hostname>-<pid>-<random>`. */
  readonly id: string;
  /** The machine it runs on. */
  readonly hostname: string;
  /** Its process id there. */
  readonly pid: number;
  /** The Blender version it runs (`"3.4.1"`), or `"unknown"`. */
  readonly blenderVersion: string;
  /** How it runs Blender: `"process"`, `"pool"` or `"fork"`. */
  readonly mode: string;
  /** How many jobs it runs at once. */
  readonly slots: number;
  /** Its tags: it takes jobs requiring any subset of them. */
  readonly tags: readonly string[];
  /** Names of the jobs it runs now. */
  readonly running: readonly string[];
  /** When it started, ISO 8601. */
  readonly startedAt: string;
  /** Its last heartbeat, ISO 8601. */
  readonly heartbeatAt: string;
  /** Attempts it ran to a result since it started; absent from older workers. */
  readonly completed?: number;
  /** Attempts that failed on it (the script's errors, crashes, timeouts, kills) since it started. */
  readonly failed?: number;
  /** Its slots' GPUs (`--gpus`), when it has any. */
  readonly gpus?: readonly string[];
  /** The scripts it takes no job of for now (they kept failing on it). */
  readonly blocked?: readonly { readonly sha256: string; readonly name: string; readonly until: string }[];
}

const NAMESPACE = /^[A-Za-z0-9_-]{1,64}$/;
const TAG = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Check a namespace.
 *
 * @param what What is being made, for the message.
 * @param namespace The namespace.
 * @returns It.
 */
export function checkNamespace(what: string, namespace: string): string {
  if (typeof namespace !== "string" || !NAMESPACE.test(namespace)) {
    throw new RangeError(
      `${what} as 'namespace' must be 1 to 64 letters, digits, '_' or '-': current value is ${
        JSON.stringify(namespace)
      }`,
    );
  }
  return namespace;
}

/**
 * Check a list of tags; returns them sorted and without duplicates.
 *
 * @param what What is being made, for the message.
 * @param option The option's name.
 * @param tags The tags.
 * @returns The sorted, unique tags.
 */
export function checkTags(what: string, option: string, tags: readonly string[]): string[] {
  if (!Array.isArray(tags)) throw new TypeError(`${what} as '${option}' must be an array of strings`);
  for (const tag of tags) {
    if (typeof tag !== "string" || !TAG.test(tag)) {
      throw new RangeError(
        `${what} as each of '${option}' must be 1 to 64 letters, digits, '_' or '-': current value is ${
          JSON.stringify(tag)
        }`,
      );
    }
  }
  return [...new Set(tags)].sort();
}

/** The names of one namespace's streams, buckets and subjects. */
export class Names {
  readonly namespace: string;
  readonly jobsStream: string;
  readonly deadStream: string;
  readonly jobsBucket: string;
  readonly workersBucket: string;
  readonly filesBucket: string;

  constructor(namespace: string) {
    this.namespace = namespace;
    this.jobsStream = `BGPROC_${namespace}_JOBS`;
    this.deadStream = `BGPROC_${namespace}_DEAD`;
    this.jobsBucket = `bgproc_${namespace}_jobs`;
    this.workersBucket = `bgproc_${namespace}_workers`;
    this.filesBucket = `bgproc_${namespace}_files`;
  }

  /** Every subject the work queue holds. */
  get queueSubjects(): string {
    return `bgproc.${this.namespace}.q.>`;
  }

  /** The queue subjects of jobs with a priority other than 0 (`queueSubject`). */
  get priorityQueueSubjects(): string {
    return `bgproc.${this.namespace}.q.p.>`;
  }

  /**
   * The subject jobs requiring exactly these (sorted) tags are queued on, at `priority`: one lane of the queue.
   * Priority 0 has the subject of records before priorities (`q.any`, `q.t.<tags>`); another has `q.p.<priority>.…`.
   */
  queueSubject(requires: readonly string[], priority = 0): string {
    const tags = requires.length === 0 ? "any" : `t.${requires.join(".")}`;
    return `bgproc.${this.namespace}.q.${priority === 0 ? "" : `p.${priority}.`}${tags}`;
  }

  /** The lane a queue subject stands for (`queueSubject`), or `null` for a subject no lane has. */
  laneOf(subject: string): Lane | null {
    const prefix = `bgproc.${this.namespace}.q.`;
    if (!subject.startsWith(prefix)) return null;
    const tokens = subject.slice(prefix.length).split(".");
    let priority = 0;
    if (tokens[0] === "p") {
      priority = Number(tokens[1]);
      if (!/^-?[1-9][0-9]{0,8}$/.test(tokens[1] ?? "")) return null;
      tokens.splice(0, 2);
    }
    if (tokens.length === 1 && tokens[0] === "any") return { requires: [], priority };
    if (tokens[0] !== "t" || tokens.length < 2) return null;
    const requires = tokens.slice(1);
    const sorted = [...new Set(requires)].sort();
    if (sorted.join(".") !== requires.join(".") || !requires.every((tag) => TAG.test(tag))) return null;
    return { requires, priority };
  }

  /** The durable consumer for jobs requiring exactly these (sorted) tags, at `priority` (one per lane). */
  consumerName(requires: readonly string[], priority = 0): string {
    const hash = createHash("sha256").update(JSON.stringify(requires)).digest("hex").slice(0, 16);
    return `bgproc-${requires.length === 0 ? "any" : hash}${priority === 0 ? "" : `-p${priority}`}`;
  }

  /** The dead-letter subject of a job. */
  deadSubject(name: string): string {
    return `bgproc.${this.namespace}.dead.${subjectToken(name)}`;
  }

  /** The dead-letter subject of messages and records that were not bgproc's (`=` starts no job name's token). */
  get unreadableSubject(): string {
    return `bgproc.${this.namespace}.dead.=unreadable`;
  }

  /** Every dead-letter subject. */
  get deadSubjects(): string {
    return `bgproc.${this.namespace}.dead.>`;
  }

  /** A per-job subject: progress, log lines, or cancel requests. */
  jobSubject(name: string, kind: "progress" | "log" | "cancel"): string {
    return `bgproc.${this.namespace}.job.${subjectToken(name)}.${kind}`;
  }

  /** The per-job subjects of every job, of one kind. */
  allJobsSubject(kind: "progress" | "log" | "cancel"): string {
    return `bgproc.${this.namespace}.job.*.${kind}`;
  }

  /** The advisory the server publishes when a message of the work queue reached MaxDeliver. */
  get maxDeliveriesAdvisory(): string {
    return `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${this.jobsStream}.*`;
  }
}

/** One lane of the work queue: the jobs requiring exactly `requires` (sorted tags), at `priority`. */
export interface Lane {
  readonly requires: readonly string[];
  readonly priority: number;
}

/** A job name as one subject token and KV key (any printable Unicode name; see `src/_name_token.ts`). */
export function subjectToken(name: string): string {
  return nameToken(name);
}

/** The job name a subject token or KV key stands for, or `undefined` for one no job name makes. */
export function nameOfToken(token: string): string | undefined {
  try {
    return nameOfNameToken(token);
  } catch {
    return undefined;
  }
}

/** Every subset of the (sorted) tags, each sorted: the requirement sets a worker with these tags satisfies. */
export function tagSubsets(tags: readonly string[]): string[][] {
  const subsets: string[][] = [];
  for (let mask = 0; mask < 1 << tags.length; mask++) {
    subsets.push(tags.filter((_, i) => (mask & (1 << i)) !== 0));
  }
  return subsets;
}

const encoder = new TextEncoder();
/** JSON to bytes. */
export function encode(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}
