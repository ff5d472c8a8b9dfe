/**
 * `new JobManager({ nats })`: the local API over a NATS cluster, with real
 * `bgproc worker` processes and real Blender.
 */

import assert from "node:assert/strict";
import { JobDroppedError, JobManager } from "../../mod.ts";
import { fixture, waitFor } from "../_helpers.ts";
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

Deno.test("JobManager({ nats }): close() right after addJob submits the job first, and a new host runs it to its end", async () => {
  await using server = await startNatsServer();
  const nats = { servers: server.url, namespace: "no-loss" };
  const manager = new JobManager({ nats, maxAttempts: 1 });
  // Before the connection is up: the jobs wait in the host, and close() submits them before it lets go.
  const names = ["first", "second", "third"];
  const jobs = names.map((name) => manager.addJob({ name, script: fixture("echo.py"), passedData: { name } }));
  await manager.close();
  for (const job of jobs) {
    const error = await job.result().then(() => null, (e: Error) => e);
    assert.match(String(error), /did not end before its JobManager closed/);
  }

  await using _worker = await startWorker(server.url, ["--namespace", "no-loss", "--workers", "2"]);
  await using again = new JobManager({ nats });
  await again.ready();
  for (const name of names) {
    const job = again.getJob(name);
    assert.ok(job !== undefined, `the new host does not know '${name}'`);
    assert.deepEqual((await job.result()).pythonData.passed_data, { name });
  }
});

Deno.test("JobManager({ nats }): health says why jobs cannot run (no worker, no worker with the tags, no server)", async () => {
  await using server = await startNatsServer();
  const nats = { servers: server.url, namespace: "health" };
  await using manager = new JobManager({ nats });
  const health = () => manager.health;
  const failing = (pattern: RegExp) => waitFor(() => health().status === "failing" && pattern.test(reason()));
  const reason = () => {
    const now = health();
    return now.status === "failing" ? now.reason : "";
  };
  const events: string[] = [];
  const controller = new AbortController();
  const following = (async () => {
    for await (const event of manager.events({ signal: controller.signal })) {
      if (event.type === "health") events.push(event.health.status);
    }
  })();
  await manager.ready();

  await failing(/no worker of namespace 'health' has sent a heartbeat/);
  await using worker = await startWorker(server.url, ["--namespace", "health", "--tags", "cpu"]);
  await waitFor(() => health().status === "ok");
  assert.equal(manager.counts.availableWorkers, 2);

  const job = manager.addJob({ name: "needs-gpu", script: fixture("echo.py"), requires: ["gpu"] });
  await failing(/no live worker has the tags gpu that job 'needs-gpu' requires/);
  await job.kill();
  await waitFor(() => health().status === "ok");

  await server.stop();
  await failing(/cannot be reached/);
  await server.restart();
  await waitFor(() => health().status === "ok", 30_000);
  controller.abort();
  await following;
  // Each change is an event (after the server came back, its reconnection may pass through "no worker" first).
  assert.deepEqual(events.slice(0, 5), ["failing", "ok", "failing", "ok", "failing"]);
  await worker.stop();
});
