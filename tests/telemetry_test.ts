/**
 * OpenTelemetry, end to end: a Deno program with `OTEL_DENO=true` runs jobs in each local mode (one completes, one
 * raises on both of its attempts, one is added inside a `Deno.serve` request), its runtime exports to a real OTLP/HTTP
 * receiver, and the spans and metrics it got are checked: the tree (job, attempts, phases), their times, the error
 * status of a dropped job, the request span as a job's parent, and that `result.timings` is the same story.
 */

import assert from "node:assert/strict";
import { fixture, MODES } from "./_helpers.ts";
import { JobManager } from "../mod.ts";
import { checkAttempt, childrenOf, EPSILON_MS, jobSpan, runTracedJobs, startOtlpReceiver } from "./_otlp.ts";

for (const mode of MODES) {
  Deno.test(`telemetry in ${mode} mode: job, attempt and phase spans, a dropped job's error, a request's jobs, metrics`, async () => {
    await using receiver = startOtlpReceiver();
    const timings = await runTracedJobs([mode], receiver.env("bgproc-test"));
    const spans = receiver.spans();

    // The job that completed: job span -> one attempt -> its phases, inside Blender in order.
    const ok = jobSpan(spans, "ok");
    assert.equal(ok.parentSpanId, "");
    assert.equal(ok.attributes["bgproc.job.state"], "COMPLETED");
    assert.equal(ok.attributes["bgproc.mode"], mode);
    assert.equal(ok.attributes["bgproc.backend"], "local");
    assert.match(String(ok.attributes["bgproc.blender.version"]), /^\d+\.\d+\.\d+/);
    const [okAttempt, ...noMore] = childrenOf(spans, ok);
    assert.equal(noMore.length, 0);
    checkAttempt(spans, okAttempt!, timings.ok!.attempts[0]!);
    const phases = childrenOf(spans, okAttempt!).map((span) => span.name);
    assert.deepEqual(phases, ["bgproc.start", "bgproc.blend", "bgproc.script", "bgproc.results", "bgproc.outputs"]);
    assert.ok(okAttempt!.startMs >= ok.startMs && okAttempt!.endMs <= ok.endMs + EPSILON_MS);
    assert.equal(okAttempt!.attributes["process.exit.code"], 0);

    // The dropped job: an error status with the one-line reason, its two attempts siblings, each failed.
    const fails = jobSpan(spans, "fails");
    assert.equal(fails.status.code, 2);
    assert.match(fails.status.message, /^error: the script raised ValueError: bad value: 42/);
    assert.equal(fails.attributes["error.type"], "error");
    assert.equal(fails.attributes["bgproc.job.attempts"], 2);
    const attempts = childrenOf(spans, fails);
    assert.equal(attempts.length, 2);
    attempts.forEach((attempt, at) => checkAttempt(spans, attempt, timings.fails!.attempts[at]!));
    assert.ok(attempts[0]!.endMs <= attempts[1]!.startMs, "the retry starts after the first attempt ended");
    assert.deepEqual(childrenOf(spans, attempts[1]!).map((span) => span.name).at(-1), "bgproc.script");

    // Inside a Deno.serve handler, the job's span is the request's child.
    const served = jobSpan(spans, "served");
    const request = spans.find((span) => span.spanId === served.parentSpanId && span.traceId === served.traceId);
    assert.ok(request !== undefined, "the served job's parent span was exported");
    assert.equal(request.kind, 2, "SERVER");
    assert.equal(request.attributes["http.request.method"], "GET");

    // result.timings tells the same: queue wait before the first attempt, phases within attempts.
    assert.ok(timings.ok!.queueWaitMs >= 0 && timings.ok!.addedMs <= timings.ok!.attempts[0]!.startMs);

    const points = receiver.points();
    const ended = (state: string) =>
      points.filter((point) => point.metric === "bgproc.jobs.ended" && point.attributes["bgproc.job.state"] === state)
        .reduce((sum, point) => sum + point.value, 0);
    assert.equal(ended("COMPLETED"), 2);
    assert.equal(ended("DROPPED"), 1);
    const names = new Set(points.map((point) => point.metric));
    for (const name of ["bgproc.job.queue_wait", "bgproc.attempt.duration", "bgproc.blender.startup"]) {
      assert.ok(names.has(name), `${name} among ${[...names].join(", ")}`);
    }
    const attemptCount = points.filter((point) => point.metric === "bgproc.attempt.duration")
      .reduce((sum, point) => sum + point.value, 0);
    assert.equal(attemptCount, 4, "four attempts were timed");
    if (mode !== "process") assert.ok(names.has("bgproc.blenders.warm"));
  });
}

Deno.test("a script that leaves time.time patched (NaN) completes, and its phases come from the runtime's own clock", async () => {
  await using manager = new JobManager({ mode: "process" });
  const result = await manager.addJob({ script: fixture("patch_clock.py") }).result();
  assert.deepEqual(result.pythonData, { patched: true });
  const [attempt] = result.timings.attempts;
  const names = attempt!.phases.map((phase) => phase.phase);
  assert.deepEqual(names, ["start", "blend", "script", "results", "outputs"]);
  for (const phase of attempt!.phases) assert.ok(Number.isFinite(phase.startMs) && Number.isFinite(phase.endMs));
});
