/**
 * Reading what arrives over NATS: any message or KV value may be garbage (another program on the subject, an older
 * or newer bgproc, a bug, an attacker), so each is parsed and its shape checked here. One that fails is a
 * {@linkcode Unreadable} saying why: the caller skips it and hands it to its `UnreadableDesk`
 * (`_unreadable.ts`), never throwing it into a loop that would then stop.
 */

import type { JobRecord, LogMessage, ProgressMessage, QueueMessage, Signature, WorkerInfo } from "./_protocol.ts";
import { RECORD_VERSION } from "./_protocol.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Why a message or record is not bgproc's. */
export class Unreadable {
  /** One line: what is wrong with it. */
  readonly problem: string;

  constructor(problem: string) {
    this.problem = problem;
  }
}

/** `bytes` as JSON, or why not. */
function parse(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return new Unreadable("not UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch {
    return new Unreadable("not JSON");
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Unreadable);
}

/** Why `value` is unreadable: its own reason when parsing failed, else `shape`. */
function unreadable(value: unknown, shape: string): Unreadable {
  return value instanceof Unreadable ? value : new Unreadable(shape);
}

const STATES = new Set(["QUEUED", "ACTIVE", "COMPLETED", "DROPPED"]);
const isCount = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;
const isPriority = (value: unknown) => Number.isSafeInteger(value) && Math.abs(value as number) <= 999_999_999;
const isFraction = (value: unknown) => typeof value === "number" && value >= 0 && value <= 1;

/** A job record of this version, or why not. */
export function readJobRecord(bytes: Uint8Array): JobRecord | Unreadable {
  return checkJobRecord(parse(bytes));
}

/** A parsed job record of this version, or why not. */
function checkJobRecord(value: unknown): JobRecord | Unreadable {
  if (!isObject(value)) return unreadable(value, "a job record must be a JSON object");
  if (value.v !== RECORD_VERSION) return new Unreadable(`a job record of version ${value.v}, not ${RECORD_VERSION}`);
  const { name, id, state, worker, attempts, maxAttempts, progress, spec, submittedAt } = value;
  if (typeof name !== "string" || typeof id !== "string") return new Unreadable("a job record without a name or id");
  if (!STATES.has(state as string)) return new Unreadable(`a job record in no known state (${String(state)})`);
  if (worker !== null && typeof worker !== "string") return new Unreadable("a job record whose worker is no string");
  if (!isCount(attempts) || !isCount(maxAttempts) || !isFraction(progress)) {
    return new Unreadable("a job record whose attempts or progress are out of range");
  }
  if (!isObject(spec) || typeof submittedAt !== "string") return new Unreadable("a job record without its spec");
  if (value.priority !== undefined && !isPriority(value.priority)) {
    return new Unreadable("a job record whose priority is not an integer of at most 9 digits");
  }
  if (value.moves !== undefined && !isCount(value.moves)) return new Unreadable("a job record whose moves is no count");
  if (state === "COMPLETED" && !isObject(value.result)) {
    return new Unreadable("a completed job record without a result");
  }
  if (state === "DROPPED" && value.report !== null && !isObject(value.report)) {
    return new Unreadable("a dropped job record whose report is no object");
  }
  return value as unknown as JobRecord;
}

/** A progress message, or why not. */
export function readProgress(bytes: Uint8Array): ProgressMessage | Unreadable {
  const value = parse(bytes);
  if (!isObject(value)) return unreadable(value, "a progress message must be a JSON object");
  if (!isCount(value.attempt) || !isFraction(value.value)) {
    return new Unreadable("a progress message needs an attempt and a value from 0 to 1");
  }
  const id = typeof value.id === "string" ? { id: value.id } : {};
  const sig = isObject(value.sig) ? { sig: value.sig as unknown as Signature } : {};
  const worker = typeof value.worker === "string" ? { worker: value.worker } : {};
  return { attempt: value.attempt as number, value: value.value as number, ...id, ...worker, ...sig };
}

/** A log line message, or why not. */
export function readLogLine(bytes: Uint8Array): LogMessage | Unreadable {
  const value = parse(bytes);
  if (!isObject(value)) return unreadable(value, "a log message must be a JSON object");
  if (!isCount(value.attempt) || typeof value.line !== "string") {
    return new Unreadable("a log message needs an attempt and a line");
  }
  if (value.stream !== "stdout" && value.stream !== "stderr") return new Unreadable("a log message of no known stream");
  const id = typeof value.id === "string" ? { id: value.id } : {};
  return { attempt: value.attempt as number, stream: value.stream, line: value.line, ...id };
}

/** A worker's advertisement, or why not. */
export function readWorkerInfo(bytes: Uint8Array): WorkerInfo | Unreadable {
  const value = parse(bytes);
  if (!isObject(value)) return unreadable(value, "a worker's entry must be a JSON object");
  if (typeof value.id !== "string" || !isCount(value.slots)) {
    return new Unreadable("a worker's entry without id or slots");
  }
  if (!Array.isArray(value.tags) || !value.tags.every((tag) => typeof tag === "string")) {
    return new Unreadable("a worker's entry whose tags are not strings");
  }
  if (!Array.isArray(value.running)) return new Unreadable("a worker's entry without its running jobs");
  // Fields newer workers add: dropped when they are not what they say (a count, a list of device ids).
  const { completed, failed, gpus, blocked, ...rest } = value;
  return {
    ...rest,
    ...(isCount(completed) ? { completed } : {}),
    ...(isCount(failed) ? { failed } : {}),
    ...(Array.isArray(gpus) && gpus.length <= 64 && gpus.every((gpu) => typeof gpu === "string" && gpu.length <= 64)
      ? { gpus }
      : {}),
    ...(Array.isArray(blocked) && blocked.length <= 1000 && blocked.every(isBlockedScript) ? { blocked } : {}),
  } as unknown as WorkerInfo;
}

function isBlockedScript(value: unknown): boolean {
  if (!isObject(value)) return false;
  return typeof value.sha256 === "string" && typeof value.name === "string" && typeof value.until === "string";
}

/** A work-queue message, or why not. */
export function readQueueMessage(bytes: Uint8Array): QueueMessage | Unreadable {
  const value = parse(bytes);
  if (!isObject(value)) return unreadable(value, "a queued job must be a JSON object");
  if (typeof value.name !== "string" || typeof value.id !== "string") {
    return new Unreadable("a queued job without a name or id");
  }
  if (value.spent !== undefined && !isCount(value.spent)) {
    return new Unreadable("a queued job whose 'spent' is not a count");
  }
  if (value.moves !== undefined && !isCount(value.moves)) {
    return new Unreadable("a queued job whose 'moves' is not a count");
  }
  // The record as queued, at its revision: a worker may claim it without reading it (a bad one is not used).
  const record = isCount(value.revision) && value.revision !== 0 ? checkJobRecord(value.record) : null;
  const queued = record === null || record instanceof Unreadable || record.name !== value.name ||
      record.id !== value.id
    ? {}
    : { revision: value.revision as number, record };
  return {
    name: value.name,
    id: value.id,
    ...(value.spent === undefined ? {} : { spent: value.spent as number }),
    ...(value.moves === undefined ? {} : { moves: value.moves as number }),
    ...queued,
  };
}

/** The server's max-deliveries advisory (the stream sequence of the message, its deliveries), or why not. */
export function readMaxDeliveries(bytes: Uint8Array): { stream_seq: number; deliveries: number } | Unreadable {
  const value = parse(bytes);
  if (!isObject(value)) return unreadable(value, "an advisory must be a JSON object");
  if (!isCount(value.stream_seq) || !isCount(value.deliveries)) {
    return new Unreadable("an advisory without a stream sequence or deliveries");
  }
  return { stream_seq: value.stream_seq as number, deliveries: value.deliveries as number };
}
