/**
 * The facade's telemetry: each job's span (`bgproc.job`) from `addJob` to its end, whichever backend runs it, and
 * the metrics of the jobs this manager added (how they ended, their queue wait; how many wait or run now). Jobs a
 * cluster tells of that another host added, or that ended before this manager started, are not counted here. With
 * telemetry off these are the OpenTelemetry API's no-ops, and a job carries no trace context.
 */

import {
  abandonJobSpan,
  type Attributes,
  carrierOf,
  endJobSpan,
  meters,
  safely,
  type Span,
  startJobSpan,
  type TraceCarrier,
} from "../_telemetry.ts";
import { JobDroppedError } from "../errors.ts";
import type { JobTimings } from "../timings.ts";
import type { JobState } from "../types.ts";

/** How a job ended, as its span and the metrics tell it. */
export interface JobEnd {
  readonly state: JobState;
  readonly attempts: number;
  readonly timings: JobTimings | undefined;
  /** Why it was dropped (a `JobDroppedError`, or why it never reached its backend). */
  readonly error?: Error;
}

/** The spans and metrics of one manager's jobs. */
export class JobSpans {
  readonly #attributes: Attributes;
  /** The jobs this manager added that have not ended, and their spans (none with telemetry off). */
  readonly #open = new Map<string, Span | undefined>();
  readonly #stopObserving: () => void;

  /**
   * `attributes` go on every span and metric (backend, mode); `stateOf` tells a job's state when the metrics are
   * collected.
   */
  constructor(attributes: Attributes, stateOf: (name: string) => JobState | undefined) {
    this.#attributes = attributes;
    this.#stopObserving = meters().observeJobs(() => {
      let queued = 0;
      let active = 0;
      for (const name of this.#open.keys()) {
        const state = stateOf(name);
        if (state === "QUEUED") queued++;
        else if (state === "ACTIVE") active++;
      }
      return { queued, active, attributes };
    });
  }

  /** Open the span of a job added now; its trace context, for its attempts' spans (`null` with telemetry off). */
  start(name: string, script: string): TraceCarrier | null {
    let carrier: TraceCarrier | null = null;
    this.#open.set(name, undefined);
    safely(() => {
      const span = startJobSpan({ ...this.#attributes, "bgproc.job.name": name, "bgproc.job.script": script });
      carrier = carrierOf(span);
      if (carrier !== null) this.#open.set(name, span);
    });
    return carrier;
  }

  /** A job ended: if this manager added it, its span ends with its final state and the metrics count it. */
  ended(name: string, end: JobEnd): void {
    if (!this.#open.has(name)) return; // Another host's job, or one that ended before this manager started.
    const span = this.#open.get(name);
    this.#open.delete(name);
    safely(() => this.#count(end));
    if (span === undefined) return;
    const blender = end.timings?.attempts.findLast((attempt) => attempt.blender !== undefined)?.blender;
    const attributes = {
      ...outcomeOf(end),
      "bgproc.job.attempts": end.attempts,
      ...(blender === undefined ? {} : { "bgproc.blender.version": blender }),
    };
    const line = end.error === undefined
      ? undefined
      : end.error instanceof JobDroppedError
      ? `${end.error.reason}: ${end.error.summary}`
      : end.error.message;
    endJobSpan(span, attributes, line?.split("\n")[0]);
  }

  #count(end: JobEnd): void {
    const { jobsEnded, queueWait } = meters();
    jobsEnded.add(1, { ...this.#attributes, ...outcomeOf(end) });
    if (end.timings !== undefined && end.timings.attempts.length > 0) {
      queueWait.record(end.timings.queueWaitMs / 1000, this.#attributes);
    }
  }

  /** The manager closed: the spans of jobs that go on without it (a cluster's) end, saying so. */
  close(): void {
    this.#stopObserving();
    for (const span of this.#open.values()) if (span !== undefined) abandonJobSpan(span);
    this.#open.clear();
  }
}

/** A job's final state and, when dropped, why (`error.type`: the drop reason, or `rejected`). */
function outcomeOf(end: JobEnd): Attributes {
  const reason = end.error instanceof JobDroppedError
    ? end.error.reason
    : end.error === undefined
    ? undefined
    : "rejected";
  return { "bgproc.job.state": end.state, ...(reason === undefined ? {} : { "error.type": reason }) };
}
