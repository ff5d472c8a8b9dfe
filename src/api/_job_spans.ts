/**
 * The facade's telemetry: each job's span (`bgproc.job`) from `addJob` to its end, whichever backend runs it, and
 * the metrics of jobs that end (count, queue wait) and of jobs waiting or running. With telemetry off these are the
 * OpenTelemetry API's no-ops, and a job carries no trace context.
 */

import { type Attributes, type Span, SpanStatusCode } from "@opentelemetry/api";
import { carrierOf, meters, safely, startJobSpan, type TraceCarrier } from "../_telemetry.ts";
import { JobDroppedError } from "../errors.ts";
import type { JobTimings } from "../timings.ts";
import type { JobCounts, JobState } from "../types.ts";

/** How a job ended, as its span and the metrics tell it. */
export interface JobEnd {
  readonly state: JobState;
  readonly attempts: number;
  readonly timings: JobTimings | undefined;
  /** Why it was dropped (a `JobDroppedError`, or why it never reached its backend). */
  readonly error?: Error;
}

/** The open spans of one manager's jobs. */
export class JobSpans {
  readonly #attributes: Attributes;
  readonly #spans = new Map<string, Span>();
  readonly #stopObserving: () => void;

  /** `attributes` go on every span and metric (mode, backend); `counts` are read when metrics are collected. */
  constructor(attributes: Attributes, counts: () => JobCounts) {
    this.#attributes = attributes;
    this.#stopObserving = meters().observeJobs(() => ({ ...counts(), attributes }));
  }

  /** Open the span of a job added now; its trace context, for its attempts' spans (`null` with telemetry off). */
  start(name: string, script: string): TraceCarrier | null {
    let carrier: TraceCarrier | null = null;
    safely(() => {
      const span = startJobSpan({ ...this.#attributes, "bgproc.job.name": name, "bgproc.job.script": script });
      carrier = carrierOf(span);
      if (carrier !== null) this.#spans.set(name, span);
    });
    return carrier;
  }

  /** A job ended: its span ends with its final state (an error status when dropped); the metrics count it. */
  ended(name: string, end: JobEnd): void {
    const span = this.#spans.get(name);
    this.#spans.delete(name);
    safely(() => this.#end(span, end));
  }

  #end(span: Span | undefined, end: JobEnd): void {
    const reason = end.error instanceof JobDroppedError
      ? end.error.reason
      : end.error === undefined
      ? null
      : "rejected";
    const outcome = { "bgproc.job.state": end.state, ...(reason ? { "error.type": reason } : {}) };
    const attributes = { ...this.#attributes, ...outcome };
    const { jobsEnded, queueWait } = meters();
    jobsEnded.add(1, attributes);
    if (end.timings !== undefined && end.timings.attempts.length > 0) {
      queueWait.record(end.timings.queueWaitMs / 1000, this.#attributes);
    }
    if (span === undefined) return;
    span.setAttributes({ ...outcome, "bgproc.job.attempts": end.attempts });
    const blender = end.timings?.attempts.findLast((attempt) => attempt.blender !== undefined)?.blender;
    if (blender !== undefined) span.setAttribute("bgproc.blender.version", blender);
    if (end.error !== undefined) {
      const line = end.error instanceof JobDroppedError
        ? `${end.error.reason}: ${end.error.summary}`
        : end.error.message;
      span.setStatus({ code: SpanStatusCode.ERROR, message: line.split("\n")[0]! });
    }
    span.end();
  }

  /** The manager closed: the spans of jobs that go on without it (a cluster's) end, saying so. */
  close(): void {
    this.#stopObserving();
    for (const span of this.#spans.values()) {
      safely(() => {
        span.setAttribute("bgproc.job.state", "UNKNOWN");
        span.addEvent("the JobManager closed before the job ended");
        span.end();
      });
    }
    this.#spans.clear();
  }
}
