/**
 * Timings from what cannot be trusted: the phases a job's runtime reports (a script can write anything into its own
 * folder), the attempt timings of a NATS record (another program may write it), and trace context from a message.
 */

import assert from "node:assert/strict";
import { attemptPhases } from "../src/local/job/phases.ts";
import { readTimings, recordTimings } from "../src/nats/_timings.ts";
import { carrierOf, contextOf, useTelemetryApi } from "../src/_telemetry.ts";
import * as otel from "npm:@opentelemetry/api@^1.9.0";
import type { JobRecord } from "../src/nats/_protocol.ts";

Deno.test("a job's reported phases: unknown names, bad numbers and the host's own phases are skipped; each is kept within the attempt", () => {
  const phases = attemptPhases(1000, 2000, 1100, [
    ["blend", 1100, 1200],
    ["script", 900, 5000], // Before the start and past the end: clipped.
    ["start", 1000, 1500], // The host's phase: a job cannot report it.
    ["upload", 1000, 1500], // A worker's phase.
    ["results", "x", 3],
    ["results", 1300, 1200], // Ends before it starts.
    ["results", NaN, 1900],
    { phase: "results" },
    "script",
    ["results", 1950, 1960, "extra"],
  ]);
  assert.deepEqual(phases, [
    { phase: "start", startMs: 1000, endMs: 1100 },
    { phase: "blend", startMs: 1100, endMs: 1200 },
    { phase: "script", startMs: 1000, endMs: 2000 },
  ]);
  assert.deepEqual(attemptPhases(1000, 2000, "soon", "not a list"), []);
  assert.equal(attemptPhases(0, 1, undefined, Array.from({ length: 1000 }, () => ["script", 0, 1])).length, 16);
});

Deno.test("a record's attempt timings: what cannot be read is left out, phases are kept within their attempt", () => {
  const good = { attempt: 1, startMs: 10, endMs: 20, outcome: "error", ranOn: "worker w", phases: [] };
  const timings = readTimings([
    good,
    { ...good, attempt: 0 },
    { ...good, attempt: 1001 },
    { ...good, outcome: "exploded" },
    { ...good, startMs: 30 },
    { ...good, ranOn: 7 },
    null,
    "x",
    {
      ...good,
      attempt: 2,
      blender: 5,
      phases: [{ phase: "script", startMs: 0, endMs: 99 }, { phase: "nope", startMs: 12, endMs: 13 }, 4],
    },
  ]);
  assert.deepEqual(timings, [good, { ...good, attempt: 2, phases: [{ phase: "script", startMs: 10, endMs: 20 }] }]);
  assert.deepEqual(readTimings({ 0: good }), []);
  assert.equal(readTimings(Array.from({ length: 100 }, () => good)).length, 16);
});

Deno.test("a NATS job's timings end at its record's last change when its last attempt recorded none", () => {
  const record = {
    submittedAt: new Date(1000).toISOString(),
    updatedAt: new Date(9000).toISOString(),
    timings: [{ attempt: 1, startMs: 2000, endMs: 3000, outcome: "crashed", ranOn: "w", phases: [] }],
  } as unknown as JobRecord;
  const timings = recordTimings(record);
  assert.equal(timings.addedMs, 1000);
  assert.equal(timings.endMs, 9000);
  assert.equal(timings.queueWaitMs, 1000);
  const garbage = recordTimings({ submittedAt: "never", updatedAt: 5, timings: "x" } as unknown as JobRecord);
  assert.deepEqual(garbage.attempts, []);
  assert.ok(Number.isFinite(garbage.endMs) && garbage.queueWaitMs === 0);
});

Deno.test("trace context from a message: only W3C traceparent values of a real span are taken", () => {
  // This process runs without OTEL_DENO: the API is handed over here (with no SDK, its providers are no-ops).
  assert.equal(contextOf({ traceparent: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01" }), undefined);
  useTelemetryApi(otel);
  const { trace } = otel;
  for (
    const traceparent of [
      undefined,
      42,
      "",
      "garbage",
      "00-00000000000000000000000000000000-0123456789abcdef-01", // An all-zero trace id is invalid.
      "00-0123456789abcdef0123456789abcdef-0000000000000000-01",
      "01-0123456789abcdef0123456789abcdef-0123456789abcdef-01", // Another version.
      "00-0123456789ABCDEF0123456789ABCDEF-0123456789abcdef-01", // Upper case.
    ]
  ) {
    assert.equal(contextOf({ traceparent }), undefined, String(traceparent));
  }
  const context = contextOf({
    traceparent: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
    tracestate: "vendor=value",
  });
  const span = trace.getSpanContext(context!);
  assert.equal(span?.traceId, "0123456789abcdef0123456789abcdef");
  assert.equal(span?.isRemote, true);
  assert.equal(span?.traceState?.get("vendor"), "value");
  // With telemetry off (no provider: this test process), a job's span is not recorded and carries no context.
  assert.equal(carrierOf(trace.getTracer("t").startSpan("x")), null);
  useTelemetryApi(undefined);
});
