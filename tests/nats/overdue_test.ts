/**
 * A job's `timeout` measured by its host: a rogue worker (a plain NATS client with queue access) takes a job, claims
 * its record and keeps its message alive with heartbeats, but never runs it. The host ends that attempt as
 * `"timed-out"` and queues the job again, where a real worker completes it as attempt 2; with no attempt left the
 * job is dropped and dead-lettered.
 */

import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, type JsMsg } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { type JobDroppedError, JobManager } from "../../mod.ts";
import { NatsJobManager } from "../../src/nats/mod.ts";
import { Names, subjectToken } from "../../src/nats/_protocol.ts";
import { fixture } from "../_helpers.ts";
import { startNatsServer, startWorker } from "./_server.ts";

/** A rogue worker: takes the next job of `namespace`, claims its record, beats its heartbeat, never runs it. */
async function rogueTake(url: string, namespace: string): Promise<{ nc: NatsConnection; msg: JsMsg; stop(): void }> {
  const names = new Names(namespace);
  const nc = await connect({ servers: url });
  const js = jetstream(nc);
  let msg: JsMsg | null = null;
  for (let i = 0; i < 200 && msg === null; i++) { // Until the host has queued it.
    const consumer = await js.consumers.get(names.jobsStream, names.consumerName([])).catch(() => null);
    msg = consumer === null ? null : await consumer.next({ expires: 1_000 });
    if (msg === null) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (msg === null) throw new Error("the rogue found no job");
  const queued = msg.json<{ name: string }>();
  const jobs = await new Kvm(js).open(names.jobsBucket);
  const entry = await jobs.get(subjectToken(queued.name));
  if (entry === null) throw new Error("no record");
  const record = entry.json<Record<string, unknown>>();
  await jobs.update(
    subjectToken(queued.name),
    JSON.stringify({ ...record, state: "ACTIVE", worker: "rogue", attempts: 1, progress: 0 }),
    entry.revision,
  );
  const beat = setInterval(() => msg.working(), 200);
  return { nc, msg, stop: () => clearInterval(beat) };
}

Deno.test("a job a worker holds past its timeout is ended by its host and runs again elsewhere", async () => {
  await using server = await startNatsServer();
  const nats = { servers: server.url, namespace: "overdue", ackWaitMs: 1_000 };
  await using host = new JobManager({ nats });
  const job = host.addJob({ name: "held", script: fixture("echo.py"), timeout: 1_000, passedData: { n: 1 } });
  await host.ready();
  const rogue = await rogueTake(server.url, "overdue");
  try {
    while (host.getJobState("held") !== "ACTIVE") await new Promise((resolve) => setTimeout(resolve, 20));
    await using _worker = await startWorker(server.url, ["--namespace", "overdue", "--workers", "1"]);
    const result = await job.result();
    assert.deepEqual(result.pythonData.passed_data, { n: 1 });
    assert.equal(result.attempts, 2, "the held attempt counts");
    const names = new Names("overdue");
    const jobs = await new Kvm(jetstream(rogue.nc)).open(names.jobsBucket);
    const entry = await jobs.get(subjectToken("held"));
    assert.deepEqual(
      { ...entry?.json<{ state: string; worker: string }>() }.worker === "rogue",
      false,
      "a real worker ended it",
    );
  } finally {
    rogue.stop();
    await rogue.nc.close();
  }
});

Deno.test("a held job with no attempt left is dropped as timed-out by its host, and dead-lettered", async () => {
  await using server = await startNatsServer();
  const nats = { servers: server.url, namespace: "overdue1", ackWaitMs: 1_000 };
  await using host = new JobManager({ nats, maxAttempts: 1 });
  const job = host.addJob({ name: "held", script: fixture("echo.py"), timeout: 1_000 });
  await host.ready();
  const rogue = await rogueTake(server.url, "overdue1");
  try {
    await assert.rejects(job.result(), (error: JobDroppedError) => {
      assert.equal(error.reason, "timed-out");
      assert.match(error.summary, /past its timeout of 1 s on worker rogue.*timed by the host/);
      return true;
    });
    await using reader = await NatsJobManager.connect({ nats });
    const letters = await reader.deadLetters();
    assert.deepEqual(letters.map((letter) => letter.name), ["held"]);
  } finally {
    rogue.stop();
    await rogue.nc.close();
  }
});
