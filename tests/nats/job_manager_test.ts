/**
 * `new JobManager({ nats })`: the local API over a NATS cluster, with real
 * `bgproc worker` processes and real Blender.
 */

import assert from "node:assert/strict";
import { JobDroppedError, JobManager } from "../../mod.ts";
import { fixture } from "../_helpers.ts";
import { startNatsServer, startWorker } from "./_server.ts";

Deno.test("JobManager({ nats }) runs jobs on workers with the local API, and a new manager finds their results", async () => {
  await using server = await startNatsServer();
  const nats = { servers: server.url, namespace: "api" };
  await using _worker = await startWorker(server.url, ["--namespace", "api", "--workers", "2"]);

  const manager = new JobManager({ nats, maxAttempts: 1 });
  // The handle comes back at once, before the connection is up.
  const job = manager.addJob({ name: "steps", script: fixture("progress.py"), passedData: { steps: 4 } });
  assert.equal(job.name, "steps");
  assert.equal(manager.getJob("steps")?.name, "steps");
  const seen: number[] = [];
  for await (const progress of job.progressUpdates()) seen.push(progress);
  assert.equal(seen.at(-1), 1);
  assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
  assert.deepEqual((await job.result()).pythonData, { steps: 4 });
  assert.equal(manager.getJobState("steps"), "COMPLETED");
  assert.ok(manager.getJobNames({ state: "COMPLETED" }).includes("steps"));
  assert.equal(manager.counts.completed >= 1, true);

  const failing = manager.addJob({ name: "fails", script: fixture("raise.py") });
  const error = await failing.result().then(() => null, (e) => e);
  assert.ok(error instanceof JobDroppedError, String(error));
  assert.equal(typeof manager.getIssueString("fails"), "string");

  const sleeper = manager.addJob({ name: "sleeper", script: fixture("sleep.py") });
  for await (const progress of sleeper.progressUpdates()) if (progress > 0) break;
  await sleeper.kill();
  assert.equal(manager.getJobState("sleeper"), "DROPPED");
  await manager.close();

  // A host restarted: the result is still in the cluster.
  await using again = new JobManager({ nats });
  assert.deepEqual(await again.getRetrievedPythonData("steps"), { steps: 4 });
  assert.equal(again.getJobState("steps"), "COMPLETED");
});
