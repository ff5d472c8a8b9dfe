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

import type * as OtelApi from "npm:@opentelemetry/api@^1.9.0";
import type { AttemptTiming } from "./timings.ts";

/** Span and metric attributes. */
export type Attributes = OtelApi.Attributes;
/** A trace context: an attempt's spans' parent. */
export type Context = OtelApi.Context;
/** A span (a job's, kept open until the job ends). */
export type Span = OtelApi.Span;

/** OpenTelemetry's span kinds (`SpanKind` of the API, whose values these are). */
export const SpanKind = { INTERNAL: 0, SERVER: 1, CLIENT: 2, PRODUCER: 3, CONSUMER: 4 } as const;
/** OpenTelemetry's span status codes. */
const ERROR_STATUS = 2;

/** Whether this process's Deno exports telemetry (`OTEL_DENO=true`), asked without a permission prompt. */
function telemetryOn(): boolean {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: "OTEL_DENO" }).state !== "granted") return false;
    return /^(true|1)$/i.test(Deno.env.get("OTEL_DENO") ?? "");
  } catch {
    return false;
  }
}

/**
 * The API, when telemetry is on; else `undefined`, and every function here does nothing. It is loaded by a specifier
 * Deno cannot read ahead, so a user who does not turn telemetry on never fetches it.
 */
let api: typeof OtelApi | undefined;
if (telemetryOn()) {
  try {
    api = await import(new URL("./_otel_api.ts", import.meta.url).href) as typeof OtelApi;
  } catch {
    api = undefined; // The package cannot be had (no npm registry): jobs run without telemetry.
  }
}

/** Use `value` as the API from now on (tests, which run without `OTEL_DENO`). */
export function useTelemetryApi(value: typeof OtelApi | undefined): void {
  api = value;
  instruments = undefined;
}

/** The instrumentation scope's name: the package's. */
const SCOPE = "@bgproc/blender";

/** A job's trace context as it travels (to a local supervisor, or over NATS in message headers): W3C Trace Context. */
export interface TraceCarrier {
  readonly traceparent: string;
  readonly tracestate?: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The W3C `traceparent` (and `tracestate`) of `span`, or `null` when it is not recorded (telemetry off). */
export function carrierOf(span: Span | undefined): TraceCarrier | null {
  if (api === undefined || span === undefined) return null;
  const spanContext = span.spanContext();
  if (!api.trace.isSpanContextValid(spanContext)) return null;
  const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, "0");
  const traceparent = `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
  const tracestate = spanContext.traceState?.serialize();
  return tracestate === undefined || tracestate === "" ? { traceparent } : { traceparent, tracestate };
}

/** The context a carrier names as the parent, or `undefined` for one that is absent or not W3C Trace Context. */
export function contextOf(
  carrier: { traceparent?: unknown; tracestate?: unknown } | null | undefined,
): Context | undefined {
  if (api === undefined) return undefined;
  const match = typeof carrier?.traceparent === "string" ? TRACEPARENT.exec(carrier.traceparent) : null;
  if (match === null) return undefined;
  const { createTraceState, trace, ROOT_CONTEXT, TraceFlags } = api;
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
export function startJobSpan(attributes: Attributes): Span | undefined {
  if (api === undefined) return undefined;
  const { trace, context } = api;
  return trace.getTracer(SCOPE).startSpan("bgproc.job", { kind: SpanKind.PRODUCER, attributes }, context.active());
}

/** End a job's span with what it came to: `attributes`, and an error status with `error`'s line when it failed. */
export function endJobSpan(span: Span, attributes: Attributes, error: string | undefined): void {
  safely(() => {
    span.setAttributes(attributes);
    if (error !== undefined) span.setStatus({ code: ERROR_STATUS, message: error });
  });
  safely(() => span.end());
}

/** End the span of a job this process no longer follows (its manager closed), saying so. */
export function abandonJobSpan(span: Span): void {
  safely(() => {
    span.setAttribute("bgproc.job.state", "UNKNOWN");
    span.addEvent("the JobManager closed before the job ended");
  });
  safely(() => span.end());
}

/**
 * The spans of an ended attempt, made after the fact at their real times: `bgproc.attempt` under `parent`, one span
 * per phase under it. Nothing is made without a parent (telemetry off, or a job without a trace).
 */
export function traceAttempt(
  parent: Context | undefined,
  timing: AttemptTiming,
  attributes: Attributes,
  kind: number = SpanKind.INTERNAL,
): void {
  if (parent !== undefined && api !== undefined) safely(() => spansOf(api!, parent, timing, attributes, kind));
}

function spansOf(otel: typeof OtelApi, parent: Context, timing: AttemptTiming, attributes: Attributes, kind: number) {
  const { trace } = otel;
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
      span.setStatus({ code: ERROR_STATUS, message: `the attempt ended: ${timing.outcome}` });
    }
    const inside = trace.setSpan(parent, span);
    for (const phase of timing.phases) {
      tracer.startSpan(`bgproc.${phase.phase}`, { startTime: phase.startMs }, inside).end(phase.endMs);
    }
  } finally {
    span.end(timing.endMs);
  }
}

/** One instrument, as bgproc uses it: a counter's `add`, a histogram's `record`. */
interface Instrument {
  add(value: number, attributes?: Attributes): void;
  record(value: number, attributes?: Attributes): void;
}

/** A manager's counts of its jobs that wait and run, for the `bgproc.jobs` gauge. */
type JobsSource = () => { queued: number; active: number; attributes: Attributes };

/** bgproc's metrics, made once on the API's global meter provider. */
function makeInstruments(otel: typeof OtelApi) {
  const meter = otel.metrics.getMeter(SCOPE);
  const seconds = (name: string, description: string) => meter.createHistogram(name, { description, unit: "s" });
  const sources = new Set<JobsSource>();
  meter.createObservableUpDownCounter("bgproc.jobs", {
    description: "A manager's jobs that have not ended, by state (QUEUED, ACTIVE)",
    unit: "{job}",
  }).addCallback((result) => {
    // Managers with the same attributes (two in one mode) are summed: one value per attribute set.
    const sums = new Map<string, { attributes: Attributes; value: number }>();
    for (const source of sources) {
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
  return {
    jobsEnded: counter(meter.createCounter("bgproc.jobs.ended", {
      description: "Jobs that ended, by final state and drop reason",
      unit: "{job}",
    })),
    queueWait: histogram(seconds("bgproc.job.queue_wait", "From addJob to the job's first attempt")),
    attemptDuration: histogram(seconds("bgproc.attempt.duration", "One attempt, from its start to its end")),
    blenderStartup: histogram(seconds(
      "bgproc.blender.startup",
      "From an attempt's start to bgproc's runtime taking the job (Blender's start, a fork, a warm worker's turn)",
    )),
    warmBlenders: counter(meter.createUpDownCounter("bgproc.blenders.warm", {
      description: "Warm Blenders ready for jobs: fork-mode zygotes and pool workers",
      unit: "{blender}",
    })),
    warmRestarts: counter(meter.createCounter("bgproc.blenders.restarts", {
      description: "Warm Blenders (zygotes, pool workers) restarted after they exited on their own",
      unit: "{restart}",
    })),
    pickup: histogram(seconds("bgproc.nats.pickup", "From a job's queue message to a worker's claim of it")),
    heartbeats: counter(meter.createCounter("bgproc.nats.heartbeats", {
      description: "Heartbeats a NATS worker sent for its running jobs",
      unit: "{heartbeat}",
    })),
    /** Report a manager's counts of queued and running jobs until the returned function is called. */
    observeJobs(source: JobsSource): () => void {
      sources.add(source);
      return () => sources.delete(source);
    },
  };
}

function counter(of: { add(value: number, attributes?: Attributes): void }): Instrument {
  return { add: (value, attributes) => of.add(value, attributes), record: () => {} };
}

function histogram(of: { record(value: number, attributes?: Attributes): void }): Instrument {
  return { add: () => {}, record: (value, attributes) => of.record(value, attributes) };
}

let instruments: ReturnType<typeof makeInstruments> | undefined;

const NOOP: Instrument = { add() {}, record() {} };

/** What {@linkcode meters} gives with telemetry off: every instrument a no-op. */
const NOOP_METERS = {
  jobsEnded: NOOP,
  queueWait: NOOP,
  attemptDuration: NOOP,
  blenderStartup: NOOP,
  warmBlenders: NOOP,
  warmRestarts: NOOP,
  pickup: NOOP,
  heartbeats: NOOP,
  observeJobs: (_source: JobsSource) => () => {},
};

/** bgproc's metric instruments (no-ops with telemetry off). */
export function meters(): typeof NOOP_METERS {
  if (api === undefined) return NOOP_METERS;
  return instruments ??= makeInstruments(api);
}
