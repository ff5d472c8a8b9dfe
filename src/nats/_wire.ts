/**
 * Reading what arrives over NATS: any message or KV value may be garbage (another program on the subject, an older
 * or newer bgproc, a bug), so each is parsed and its shape checked here, and one that fails is skipped, never
 * thrown into a loop that would then stop.
 */

import type { JobRecord, LogMessage, ProgressMessage, QueueMessage, WorkerInfo } from "./_protocol.ts";
import { RECORD_VERSION } from "./_protocol.ts";

const decoder = new TextDecoder();

/** `bytes` as JSON, or `undefined` when they are not (UTF-8) JSON. */
function parse(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const STATES = new Set(["QUEUED", "ACTIVE", "COMPLETED", "DROPPED"]);
const isCount = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;
const isFraction = (value: unknown) => typeof value === "number" && value >= 0 && value <= 1;

/** A job record of this version, or `null`. */
export function readJobRecord(bytes: Uint8Array): JobRecord | null {
  const value = parse(bytes);
  if (!isObject(value) || value.v !== RECORD_VERSION) return null;
  const { name, id, state, worker, attempts, maxAttempts, progress, spec, submittedAt } = value;
  if (typeof name !== "string" || typeof id !== "string" || !STATES.has(state as string)) return null;
  if (worker !== null && typeof worker !== "string") return null;
  if (!isCount(attempts) || !isCount(maxAttempts) || !isFraction(progress)) return null;
  if (!isObject(spec) || typeof submittedAt !== "string") return null;
  if (state === "COMPLETED" && !isObject(value.result)) return null;
  if (state === "DROPPED" && value.report !== null && !isObject(value.report)) return null;
  return value as unknown as JobRecord;
}

/** A progress message, or `null`. */
export function readProgress(bytes: Uint8Array): ProgressMessage | null {
  const value = parse(bytes);
  if (!isObject(value) || !isCount(value.attempt) || !isFraction(value.value)) return null;
  const id = typeof value.id === "string" ? { id: value.id } : {};
  return { attempt: value.attempt as number, value: value.value as number, ...id };
}

/** A log line message, or `null`. */
export function readLogLine(bytes: Uint8Array): LogMessage | null {
  const value = parse(bytes);
  if (!isObject(value) || !isCount(value.attempt) || typeof value.line !== "string") return null;
  if (value.stream !== "stdout" && value.stream !== "stderr") return null;
  const id = typeof value.id === "string" ? { id: value.id } : {};
  return { attempt: value.attempt as number, stream: value.stream, line: value.line, ...id };
}

/** A worker's advertisement, or `null`. */
export function readWorkerInfo(bytes: Uint8Array): WorkerInfo | null {
  const value = parse(bytes);
  if (!isObject(value) || typeof value.id !== "string" || !isCount(value.slots)) return null;
  if (!Array.isArray(value.tags) || !value.tags.every((tag) => typeof tag === "string")) return null;
  if (!Array.isArray(value.running)) return null;
  return value as unknown as WorkerInfo;
}

/** A work-queue message, or `null`. */
export function readQueueMessage(bytes: Uint8Array): QueueMessage | null {
  const value = parse(bytes);
  if (!isObject(value) || typeof value.name !== "string" || typeof value.id !== "string") return null;
  return { name: value.name, id: value.id };
}

/** The server's max-deliveries advisory (the stream sequence of the message, its deliveries), or `null`. */
export function readMaxDeliveries(bytes: Uint8Array): { stream_seq: number; deliveries: number } | null {
  const value = parse(bytes);
  if (!isObject(value) || !isCount(value.stream_seq) || !isCount(value.deliveries)) return null;
  return { stream_seq: value.stream_seq as number, deliveries: value.deliveries as number };
}
