/**
 * bgproc's OpenTelemetry: spans and metrics through `@opentelemetry/api` only. bgproc brings no SDK: Deno's runtime
 * is one (`OTEL_DENO=true` registers its providers with the API and exports over OTLP), and without it every call
 * here goes to the API's no-op providers, which cost next to nothing. A job's trace is made of:
 *
 * - `bgproc.job`: from `addJob` to the job's end, on the host that added it (the facade);
 * - `bgproc.attempt`: one per attempt, a child of the job's span, made where the attempt ran (locally, or by the NATS
 *   worker that ran it, which got the job's trace context with the job);
 * - one span per phase of the attempt (`bgproc.script`, ...), its children, timed where the phase ran (inside Blender
 *   by bgproc's runtime) and placed at its real time.
 */

import {
  type Attributes,
  type Context,
  context,
  createTraceState,
  type Histogram,
  metrics,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
} from "npm:@opentelemetry/api@^1.9.0";
import type { AttemptTiming } from "./timings.ts";

// The one import of the API (with its version, so the library resolves it wherever it is imported from: JSR, a URL, a
// file path without our deno.json): the rest of bgproc takes what it needs from here.
export {
  type Attributes,
  type Context,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "npm:@opentelemetry/api@^1.9.0";

/** The instrumentation scope's name: the package's. */
const SCOPE = "@bgproc/blender";

/** A job's trace context as it travels (to a local supervisor, or over NATS in message headers): W3C Trace Context. */
export interface TraceCarrier {
  readonly traceparent: string;
  readonly tracestate?: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The W3C `traceparent` (and `tracestate`) of `span`, or `null` when it is not recorded (telemetry off). */
export function carrierOf(span: Span): TraceCarrier | null {
  const spanContext = span.spanContext();
  if (!trace.isSpanContextValid(spanContext)) return null;
  const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, "0");
  const traceparent = `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
  const tracestate = spanContext.traceState?.serialize();
  return tracestate === undefined || tracestate === "" ? { traceparent } : { traceparent, tracestate };
}

/** The context a carrier names as the parent, or `undefined` for one that is absent or not W3C Trace Context. */
export function contextOf(
  carrier: { traceparent?: unknown; tracestate?: unknown } | null | undefined,
): Context | undefined {
  const match = typeof carrier?.traceparent === "string" ? TRACEPARENT.exec(carrier.traceparent) : null;
  if (match === null) return undefined;
  const [, traceId, spanId, flags] = match as unknown as [string, string, string, string];
  const state = typeof carrier?.tracestate === "string" && carrier.tracestate.length <= 512
    ? { traceState: createTraceState(carrier.tracestate) }
    : {};
  const spanContext = { traceId, spanId, traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED, isRemote: true };
  if (!trace.isSpanContextValid(spanContext)) return undefined;
  return trace.setSpanContext(ROOT_CONTEXT, { ...spanContext, ...state });
}

/**
 * Run `record` (spans, metrics), swallowing what it throws: telemetry is an observer, and a failure of it (an
 * attribute an exporter refuses, a provider's bug) must never fail or hang a job.
 */
export function safely(record: () => void): void {
  try {
    record();
  } catch {
    // Nothing is recorded: the job goes on as if telemetry were off.
  }
}

/** Start a job's span (`bgproc.job`), a child of whatever span is active (a `Deno.serve` request's, a user's). */
export function startJobSpan(attributes: Attributes): Span {
  return trace.getTracer(SCOPE).startSpan("bgproc.job", { kind: SpanKind.PRODUCER, attributes }, context.active());
}

/**
 * The spans of an ended attempt, made after the fact at their real times: `bgproc.attempt` under `parent`, one span
 * per phase under it. Nothing is made without a parent (telemetry off, or a job without a trace).
 */
export function traceAttempt(
  parent: Context | undefined,
  timing: AttemptTiming,
  attributes: Attributes,
  kind: SpanKind = SpanKind.INTERNAL,
): void {
  if (parent !== undefined) safely(() => spansOf(parent, timing, attributes, kind));
}

function spansOf(parent: Context, timing: AttemptTiming, attributes: Attributes, kind: SpanKind): void {
  const tracer = trace.getTracer(SCOPE);
  const span = tracer.startSpan("bgproc.attempt", {
    kind,
    startTime: timing.startMs,
    attributes: {
      ...attributes,
      "bgproc.attempt": timing.attempt,
      "bgproc.attempt.outcome": timing.outcome,
      "bgproc.attempt.ran_on": timing.ranOn,
      ...(timing.blender === undefined ? {} : { "bgproc.blender.version": timing.blender }),
    },
  }, parent);
  try {
    if (timing.outcome !== "completed") {
      span.setAttribute("error.type", timing.outcome);
      span.setStatus({ code: SpanStatusCode.ERROR, message: `the attempt ended: ${timing.outcome}` });
    }
    const inside = trace.setSpan(parent, span);
    for (const phase of timing.phases) {
      tracer.startSpan(`bgproc.${phase.phase}`, { startTime: phase.startMs }, inside).end(phase.endMs);
    }
  } finally {
    span.end(timing.endMs);
  }
}

/** bgproc's metrics, made once (on the API's global meter provider: no-op without one). */
class Instruments {
  readonly #meter = metrics.getMeter(SCOPE);
  readonly jobsEnded = this.#meter.createCounter("bgproc.jobs.ended", {
    description: "Jobs that ended, by final state and drop reason",
    unit: "{job}",
  });
  readonly queueWait = this.#seconds("bgproc.job.queue_wait", "From addJob to the job's first attempt");
  readonly attemptDuration = this.#seconds("bgproc.attempt.duration", "One attempt, from its start to its end");
  readonly blenderStartup = this.#seconds(
    "bgproc.blender.startup",
    "From an attempt's start to bgproc's runtime taking the job (Blender's start, a fork, a warm worker's turn)",
  );
  readonly warmBlenders = this.#meter.createUpDownCounter("bgproc.blenders.warm", {
    description: "Warm Blenders ready for jobs: fork-mode zygotes and pool workers",
    unit: "{blender}",
  });
  readonly warmRestarts = this.#meter.createCounter("bgproc.blenders.restarts", {
    description: "Warm Blenders (zygotes, pool workers) restarted after they exited on their own",
    unit: "{restart}",
  });
  readonly pickup = this.#seconds("bgproc.nats.pickup", "From a job's queue message to a worker's claim of it");
  readonly heartbeats = this.#meter.createCounter("bgproc.nats.heartbeats", {
    description: "Heartbeats a NATS worker sent for its running jobs",
    unit: "{heartbeat}",
  });

  /** Jobs running and queued now, and a manager's source of the counts. */
  readonly #jobs = this.#meter.createObservableUpDownCounter("bgproc.jobs", {
    description: "A manager's jobs that have not ended, by state (QUEUED, ACTIVE)",
    unit: "{job}",
  });
  readonly #sources = new Set<() => { queued: number; active: number; attributes: Attributes }>();

  constructor() {
    this.#jobs.addCallback((result) => {
      // Managers with the same attributes (two in one mode) are summed: one value per attribute set.
      const sums = new Map<string, { attributes: Attributes; value: number }>();
      for (const source of this.#sources) {
        safely(() => {
          const { queued, active, attributes } = source();
          for (const [state, value] of [["QUEUED", queued], ["ACTIVE", active]] as const) {
            const labelled = { ...attributes, "bgproc.job.state": state };
            const key = JSON.stringify(Object.entries(labelled).sort());
            const sum = sums.get(key) ?? { attributes: labelled, value: 0 };
            sum.value += value;
            sums.set(key, sum);
          }
        });
      }
      for (const { attributes, value } of sums.values()) result.observe(value, attributes);
    });
  }

  /** Report a manager's counts of queued and running jobs until the returned function is called. */
  observeJobs(source: () => { queued: number; active: number; attributes: Attributes }): () => void {
    this.#sources.add(source);
    return () => this.#sources.delete(source);
  }

  #seconds(name: string, description: string): Histogram {
    return this.#meter.createHistogram(name, { description, unit: "s" });
  }
}

let instruments: Instruments | undefined;

/** bgproc's metric instruments. */
export function meters(): Instruments {
  return instruments ??= new Instruments();
}
