/**
 * A real OTLP/HTTP receiver on loopback for the telemetry tests: Deno's exporter (`OTEL_DENO=true`,
 * `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) posts JSON to `/v1/traces`, `/v1/metrics` and `/v1/logs`; this keeps it
 * and reads the spans and metrics back.
 */

import assert from "node:assert/strict";
import { fixture } from "./_helpers.ts";
import type { AttemptTiming, JobTimings } from "../mod.ts";

/** One span as the receiver got it, with times in milliseconds since the epoch. */
export interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly startMs: number;
  readonly endMs: number;
  /** 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number; readonly message: string };
  readonly attributes: Readonly<Record<string, unknown>>;
}

/** One data point of a metric (the last export's, cumulative), with its attributes. */
export interface ReceivedPoint {
  readonly service: string;
  readonly metric: string;
  readonly unit: string;
  readonly value: number;
  readonly attributes: Readonly<Record<string, unknown>>;
}

/** The receiver. */
export interface OtlpReceiver extends AsyncDisposable {
  /** The environment that points a Deno process's telemetry here, as `service`. */
  env(service: string): Record<string, string>;
  spans(): ReceivedSpan[];
  /** The data points of the last export of each metric per service. */
  points(): ReceivedPoint[];
}

type Attribute = { key: string; value: Record<string, unknown> };
type Resource = { attributes: Attribute[] };
type OtlpSpan = {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  status?: { code?: number; message?: string };
  attributes?: Attribute[];
};
type Points = { dataPoints?: Record<string, unknown>[] };
type OtlpMetric = { name: string; unit: string; sum?: Points; gauge?: Points; histogram?: Points };
type Body = {
  resourceSpans?: { resource: Resource; scopeSpans: { spans: OtlpSpan[] }[] }[];
  resourceMetrics?: { resource: Resource; scopeMetrics: { metrics: OtlpMetric[] }[] }[];
};

function attributesOf(list: Attribute[] | undefined): Record<string, unknown> {
  const attributes: Record<string, unknown> = {};
  for (const { key, value } of list ?? []) {
    const [kind, raw] = Object.entries(value)[0] ?? [];
    attributes[key] = kind === "intValue" ? Number(raw) : raw;
  }
  return attributes;
}

const serviceOf = (resource: Resource) => String(attributesOf(resource.attributes)["service.name"]);

const ms = (nanos: string) => Number(BigInt(nanos) / 1000n) / 1000;

/** Start the receiver on a free loopback port. */
export function startOtlpReceiver(): OtlpReceiver {
  const bodies: Body[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    bodies.push(await request.json());
    return Response.json({});
  });
  const endpoint = `http://127.0.0.1:${server.addr.port}`;
  return {
    env: (service) => ({
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_SERVICE_NAME: service,
    }),
    spans() {
      const spans: ReceivedSpan[] = [];
      for (const body of bodies) {
        for (const { resource, scopeSpans } of body.resourceSpans ?? []) {
          for (const span of scopeSpans.flatMap((scope) => scope.spans)) {
            spans.push({
              service: serviceOf(resource),
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? "",
              name: span.name,
              kind: span.kind,
              startMs: ms(span.startTimeUnixNano),
              endMs: ms(span.endTimeUnixNano),
              status: { code: span.status?.code ?? 0, message: span.status?.message ?? "" },
              attributes: attributesOf(span.attributes),
            });
          }
        }
      }
      return spans;
    },
    points() {
      const last = new Map<string, ReceivedPoint[]>();
      for (const body of bodies) {
        for (const { resource, scopeMetrics } of body.resourceMetrics ?? []) {
          for (const metric of scopeMetrics.flatMap((scope) => scope.metrics)) {
            last.set(`${serviceOf(resource)} ${metric.name}`, pointsOf(serviceOf(resource), metric));
          }
        }
      }
      return [...last.values()].flat();
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

function pointsOf(service: string, metric: OtlpMetric): ReceivedPoint[] {
  const data = metric.sum ?? metric.gauge ?? metric.histogram;
  return (data?.dataPoints ?? []).map((point) => ({
    service,
    metric: metric.name,
    unit: metric.unit,
    value: Number(point.asDouble ?? point.asInt ?? point.count ?? 0),
    attributes: attributesOf(point.attributes as Attribute[] | undefined),
  }));
}

/** Run tests/fixtures/otel_jobs.ts with telemetry into `env`; its printed timings. */
export async function runTracedJobs(args: string[], env: Record<string, string>): Promise<Record<string, JobTimings>> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-env",
      "--allow-net",
      fixture("otel_jobs.ts"),
      ...args,
    ],
    env,
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, `${stdout}\n${new TextDecoder().decode(output.stderr)}`);
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

/** The one span named `name` whose attribute `bgproc.job.name` is `job`. */
export function jobSpan(spans: ReceivedSpan[], job: string): ReceivedSpan {
  const found = spans.filter((span) => span.name === "bgproc.job" && span.attributes["bgproc.job.name"] === job);
  assert.equal(found.length, 1, `one bgproc.job span for ${job}: ${JSON.stringify(found)}`);
  return found[0]!;
}

/** The children of `parent`, by start. */
export function childrenOf(spans: ReceivedSpan[], parent: ReceivedSpan): ReceivedSpan[] {
  return spans.filter((span) => span.traceId === parent.traceId && span.parentSpanId === parent.spanId)
    .sort((a, b) => a.startMs - b.startMs);
}

/** Timestamps pass through nanoseconds: equal within a microsecond. */
export const EPSILON_MS = 0.001;

/**
 * Check one attempt's span against its timing: a child of the job's span, its phases its children in order and
 * within it, the same phases `timings` tells of.
 */
export function checkAttempt(spans: ReceivedSpan[], attempt: ReceivedSpan, timing: AttemptTiming): void {
  assert.equal(attempt.attributes["bgproc.attempt"], timing.attempt);
  assert.equal(attempt.attributes["bgproc.attempt.outcome"], timing.outcome);
  assert.equal(attempt.status.code, timing.outcome === "completed" ? 0 : 2);
  assert.ok(Math.abs(attempt.startMs - timing.startMs) < EPSILON_MS && Math.abs(attempt.endMs - timing.endMs) < 0.01);
  const phases = childrenOf(spans, attempt);
  assert.deepEqual(phases.map((span) => span.name), timing.phases.map((phase) => `bgproc.${phase.phase}`));
  for (const phase of phases) {
    assert.ok(phase.startMs >= attempt.startMs - EPSILON_MS && phase.endMs <= attempt.endMs + EPSILON_MS, phase.name);
    assert.ok(phase.startMs <= phase.endMs, phase.name);
  }
  for (let at = 1; at < phases.length; at++) {
    const [before, after] = [phases[at - 1]!, phases[at]!];
    assert.ok(before.endMs <= after.startMs + EPSILON_MS, `${before.name} ends before ${after.name} starts`);
  }
}
