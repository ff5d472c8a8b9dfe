/**
 * NATS edge cases: an unreachable server, a worker lost on a job's last
 * attempt (the server's max-deliveries advisory dead-letters it), and a
 * worker's graceful stop on SIGTERM.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { JobDroppedError } from "../../mod.ts";
import { NatsConnectionError, NatsJobManager, runWorker } from "../../src/nats/mod.ts";
import { openCluster } from "../../src/nats/_connection.ts";
import { sha256File } from "../../src/nats/_files.ts";
import { fixture } from "../_helpers.ts";
import { startNatsServer, startWorker, untilQueued } from "./_server.ts";

Deno.test("an unreachable server is a NatsConnectionError with its URL, for hosts and workers", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `nats://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  listener.close();
  await assert.rejects(
    NatsJobManager.connect({ nats: { servers: url } }),
    (error) => error instanceof NatsConnectionError && error.url === url && error.message.includes(url),
  );
  await assert.rejects(
    runWorker({ nats: { servers: url } }),
    (error) => error instanceof NatsConnectionError && error.url === url,
  );
});

Deno.test("a worker lost on the last attempt: the job is dropped and dead-lettered; SIGTERM stops a worker gracefully", async (t) => {
  await using server = await startNatsServer();
  const args = ["--namespace", "lifecycle", "--workers", "1", "--ack-wait", "1000", "--max-attempts", "1"];
  const options = { nats: { servers: server.url, namespace: "lifecycle" }, ackWaitMs: 1000, maxAttempts: 1 };
  await using manager = await NatsJobManager.connect(options);
  const step = { sanitizeOps: false, sanitizeResources: false };

  await t.step({
    name: "SIGKILL on the only attempt: the max-deliveries advisory drops and dead-letters the job",
    fn: async () => {
      const doomed = await startWorker(server.url, args);
      const job = manager.addJob({ name: "doomed", script: fixture("sleep.py") });
      for await (const progress of job.progressUpdates()) if (progress > 0) break;
      await doomed.killGroup();
      await Deno.remove(doomed.workDir, { recursive: true });
      // A machine comes back: its pulls make the server see the exhausted message.
      await using _back = await startWorker(server.url, args);
      const error = await job.result().then(() => null, (e) => e);
      assert.ok(error instanceof JobDroppedError, String(error));
      assert.equal(error.reason, "crashed");
      assert.match(error.summary, /stopped heartbeating/);
      let letters = await manager.deadLetters();
      for (let i = 0; i < 100 && letters.length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        letters = await manager.deadLetters();
      }
      assert.deepEqual(letters.map((letter) => letter.name), ["doomed"]);
    },
    ...step,
  });

  await t.step({
    name: "logs() streams a remote job's output lines",
    fn: async () => {
      await using _worker = await startWorker(server.url, args);
      const logFile = await Deno.makeTempFile({ prefix: "bgproc-nats-log-" });
      const job = manager.addJob({ name: "talker", script: fixture("echo.py"), logFile });
      const lines: string[] = [];
      for await (const line of job.logs()) lines.push(line.line);
      await job.result();
      assert.ok(lines.includes("echo done: ünïcode ✓"), lines.join("\n"));
      // The log file's writer may still be on its last line.
      let logged = await Deno.readTextFile(logFile);
      for (let i = 0; i < 100 && !logged.includes("echo done"); i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        logged = await Deno.readTextFile(logFile);
      }
      await Deno.remove(logFile);
      assert.match(logged, /--- talker: attempt 1 on .+ ---\n/);
      assert.ok(logged.includes("echo done: ünïcode ✓\n"));
    },
    ...step,
  });

  await t.step({
    name: "SIGTERM past the grace period: the running job is handed back and completes on another worker",
    fn: async () => {
      const leaving = await startWorker(server.url, [...args, "--tags", "handoff", "--grace", "200"]);
      // The first attempt sleeps until the worker leaves (however long the second worker takes to start on a busy
      // machine); the second ends at once.
      const marker = join(await Deno.makeTempDir({ prefix: "bgproc-nats-handoff-" }), "first-attempt");
      const job = manager.addJob({
        name: "handed",
        script: fixture("sleep.py"),
        passedData: { seconds: 600, once_marker: marker },
        requires: ["handoff"],
        maxAttempts: 2,
      });
      for await (const progress of job.progressUpdates()) if (progress > 0) break;
      await using _staying = await startWorker(server.url, [...args, "--tags", "handoff", "--max-attempts", "2"]);
      assert.equal((await leaving.stop()).code, 0);
      await Deno.remove(leaving.workDir, { recursive: true });
      assert.ok(leaving.output.some((line) => line.includes("handed back handed")), leaving.output.join("\n"));
      const result = await job.result();
      assert.deepEqual(result.pythonData, { slept: true });
      assert.equal(result.attempts, 2);
      await Deno.remove(dirname(marker), { recursive: true });
    },
    ...step,
  });

  await t.step({
    name: "SIGTERM: the worker takes no new job, lets the running one finish, leaves the worker list and exits 0",
    fn: async () => {
      const worker = await startWorker(server.url, args);
      const job = manager.addJob({ name: "finishing", script: fixture("sleep.py"), passedData: { seconds: 1 } });
      for await (const progress of job.progressUpdates()) if (progress > 0) break;
      const stopped = worker.stop();
      const result = await job.result();
      assert.deepEqual(result.pythonData, { slept: true });
      assert.equal((await stopped).code, 0);
      await Deno.remove(worker.workDir, { recursive: true });
      assert.ok(worker.output.some((line) => line.includes("stopping")));
      for (let i = 0; i < 100 && (await manager.workers()).length > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.deepEqual(await manager.workers(), []);
    },
    ...step,
  });

  await t.step({
    name: "a job whose file is gone from the object store is dropped with reason start-failed",
    fn: async () => {
      const script = await Deno.makeTempFile({ prefix: "bgproc-nats-orphan-", suffix: ".py" });
      await Deno.writeTextFile(script, `python_data = {"id": "${crypto.randomUUID()}"}\n`);
      const job = manager.addJob({ name: "orphan", script, requires: ["late"], maxAttempts: 1 });
      const cluster = await openCluster({ servers: server.url }, "lifecycle");
      await untilQueued(cluster, cluster.names.queueSubject(["late"])); // Once queued, its files are in the store.
      await cluster.files.delete(await sha256File(script));
      await cluster.nc.close();
      await Deno.remove(script);
      await using _late = await startWorker(server.url, [...args, "--tags", "late"]);
      const error = await job.result().then(() => null, (e) => e);
      assert.ok(error instanceof JobDroppedError, String(error));
      assert.equal(error.reason, "start-failed");
      assert.match(error.summary, /not in the object store/);
    },
    ...step,
  });

  await t.step({
    name: "collectFiles() removes the files no job record refers to",
    fn: async () => {
      await manager.removeJob("talker");
      const removed = await manager.collectFiles({ olderThanMs: 0 });
      assert.ok(removed.includes(await sha256File(fixture("echo.py"))));
      assert.ok(!removed.includes(await sha256File(fixture("sleep.py"))));
      assert.equal(manager.getJob("talker"), undefined);
    },
    ...step,
  });
});
