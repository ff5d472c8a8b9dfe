/**
 * OpenTelemetry across machines: a host program and a `bgproc worker`, each a Deno process with its own telemetry
 * into one real OTLP/HTTP receiver. The job's trace context travels with the job, so the worker's attempt spans (its
 * files' fetch, the phases inside Blender, the upload) are children of the host's job span in one trace.
 */

import assert from "node:assert/strict";
import { checkAttempt, childrenOf, jobSpan, runTracedJobs, startOtlpReceiver } from "../_otlp.ts";
import { startNatsServer, startWorker } from "./_server.ts";

Deno.test("telemetry over NATS: one trace from the host's job span into the worker's attempts and their phases", async () => {
  await using receiver = startOtlpReceiver();
  await using server = await startNatsServer();
  const worker = await startWorker(server.url, ["--mode", "pool", "--workers", "1"], receiver.env("bgproc-worker"));
  let timings;
  try {
    timings = await runTracedJobs(["nats", server.url], receiver.env("bgproc-host"));
  } finally {
    await worker[Symbol.asyncDispose](); // Its telemetry is flushed when it exits.
  }
  const spans = receiver.spans();

  const ok = jobSpan(spans, "ok");
  assert.equal(ok.service, "bgproc-host");
  assert.equal(ok.attributes["bgproc.backend"], "nats");
  assert.equal(ok.attributes["bgproc.job.state"], "COMPLETED");
  const [attempt, ...noMore] = childrenOf(spans, ok);
  assert.equal(noMore.length, 0);
  assert.equal(attempt!.service, "bgproc-worker");
  assert.equal(attempt!.traceId, ok.traceId);
  assert.equal(attempt!.attributes["bgproc.mode"], "pool");
  assert.equal(attempt!.attributes["bgproc.slot"], 0);
  assert.match(String(attempt!.attributes["bgproc.worker"]), /\S/);
  const recorded = timings.ok!.attempts;
  assert.equal(recorded.length, 1, "the host's result.timings has the worker's attempt, from the record");
  checkAttempt(spans, attempt!, recorded[0]!);
  assert.deepEqual(childrenOf(spans, attempt!).map((span) => span.name), [
    "bgproc.fetch",
    "bgproc.start",
    "bgproc.blend",
    "bgproc.script",
    "bgproc.results",
    "bgproc.outputs",
    "bgproc.upload",
  ]);

  // Retries over NATS are sibling attempts in the same trace, each recorded for the host's timings.
  const fails = jobSpan(spans, "fails");
  assert.equal(fails.status.code, 2);
  const attempts = childrenOf(spans, fails);
  assert.deepEqual(attempts.map((span) => span.attributes["bgproc.attempt"]), [1, 2]);
  assert.deepEqual(timings.fails!.attempts.map((timing) => timing.attempt), [1, 2]);
  attempts.forEach((span, at) => checkAttempt(spans, span, timings.fails!.attempts[at]!));

  // The worker's metrics: its attempts, and the pickup of each job from the queue.
  const points = receiver.points().filter((point) => point.service === "bgproc-worker");
  const count = (metric: string) =>
    points.filter((point) => point.metric === metric).reduce((sum, point) => sum + point.value, 0);
  assert.equal(count("bgproc.nats.pickup"), 3, "three jobs were picked up (a redelivery is not a pickup)");
  assert.equal(count("bgproc.attempt.duration"), 4);
});
