/**
 * Priorities over NATS: a worker takes the highest-priority job it can run whenever a slot frees (first in, first
 * out within a priority, across the lanes of its tags), and a queued job's priority can be changed (its message
 * moves to another lane; a stale message never runs it twice).
 */

import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsJobManager } from "../../src/nats/manager.ts";
import { encode, Names } from "../../src/nats/_protocol.ts";
import { openCluster } from "../../src/nats/_connection.ts";
import { readRecord } from "../../src/nats/_records.ts";
import { MAX_PRIORITY_LANES } from "../../src/nats/_lanes.ts";
import type { Job } from "../../src/api/job.ts";
import { fixture, waitFor } from "../_helpers.ts";
import { startNatsServer, startWorker } from "./_server.ts";

/** When each job's (one) attempt started on its worker, by name, in the order they started. */
async function startOrder(jobs: Job[]): Promise<string[]> {
  const starts = await Promise.all(jobs.map(async (job) => {
    const result = await job.result();
    assert.equal(result.attempts, 1, `${job.name} ran once`);
    return { name: job.name, start: result.timings.attempts[0]!.startMs };
  }));
  return starts.sort((a, b) => a.start - b.start).map(({ name }) => name);
}

/** The names of `priorities`' jobs (`job-NN`) in the order they should start: higher first, then as added. */
function expectedOrder(priorities: readonly number[]): string[] {
  return priorities.map((priority, index) => ({ index, priority }))
    .sort((a, b) => b.priority - a.priority || a.index - b.index)
    .map(({ index }) => `job-${String(index).padStart(2, "0")}`);
}

const PRIORITIES = [0, 3, -2, 3, 1, 0, 7, -2, 1, 3, 0, 5, 7, -1, 2, 0, 5, 1, -2, 4];
const TAGGED = new Set([5, 2, -1, 4]);

Deno.test("over NATS, 20 jobs queued with mixed priorities behind a busy slot start in priority order (with and without tags); setPriority moves queued jobs up and down", async () => {
  await using server = await startNatsServer();
  await using _worker = await startWorker(server.url, ["--workers", "1", "--tags", "gpu"]);
  await using manager = await NatsJobManager.connect({ nats: { servers: server.url } });
  // The one slot is busy while the others queue up.
  const blocker = manager.addJob({ name: "blocker", script: fixture("sleep.py"), passedData: { seconds: 2 } });
  await waitFor(() => blocker.state === "ACTIVE", 30_000, "the blocker to start");
  const jobs = PRIORITIES.map((priority, index) =>
    manager.addJob({
      name: `job-${String(index).padStart(2, "0")}`,
      script: fixture("echo.py"),
      priority,
      // The jobs of some priorities need the worker's tag: their own lanes, ordered with the others by priority
      // (first in, first out holds within a lane: a priority and a set of tags).
      ...(TAGGED.has(priority) ? { requires: ["gpu"] } : {}),
    })
  );
  assert.equal(jobs[5]!.priority, 0);
  await manager.setPriority("job-05", 100); // Up: it goes first.
  await manager.setPriority("job-06", -5); // Down: it goes last.
  assert.deepEqual([jobs[5]!.priority, jobs[6]!.priority], [100, -5]);
  await blocker.result();
  const priorities = PRIORITIES.map((priority, index) => index === 5 ? 100 : index === 6 ? -5 : priority);
  assert.deepEqual(await startOrder(jobs), expectedOrder(priorities));
  await assert.rejects(manager.setPriority("job-05", 1), /as it is COMPLETED, not QUEUED/);
  // Nothing is left in the queue: the moved jobs' old messages were removed (or dropped as stale), none ran twice.
  await queueHolds(server.url, (n) => n === 0, "no message"); // A worker acks just after writing the record.
});

Deno.test("over NATS, a worker started after 20 jobs were queued with mixed priorities runs them in priority order", async () => {
  await using server = await startNatsServer();
  await using manager = await NatsJobManager.connect({ nats: { servers: server.url } });
  const jobs = PRIORITIES.map((priority, index) =>
    manager.addJob({ name: `job-${String(index).padStart(2, "0")}`, script: fixture("echo.py"), priority })
  );
  await queueHolds(server.url, (n) => n >= 20, "at least 20 messages");
  await using _worker = await startWorker(server.url, ["--workers", "1"]);
  assert.deepEqual(await startOrder(jobs), expectedOrder(PRIORITIES));
});

Deno.test("over NATS, a job moved while queued runs once, at its new priority, though a stale message of it is delivered first", async () => {
  await using server = await startNatsServer();
  await using manager = await NatsJobManager.connect({ nats: { servers: server.url } });
  const blocker = manager.addJob({ name: "blocker", script: fixture("sleep.py"), passedData: { seconds: 1 } });
  const moved = manager.addJob({ name: "moved", script: fixture("echo.py"), priority: 2 });
  await manager.setPriority("moved", -3);
  const later = manager.addJob({ name: "later", script: fixture("echo.py") });
  // Its old message was removed; one that escaped the removal (a worker held it then) is in its old lane still.
  const cluster = await openCluster({ servers: server.url }, "default");
  try {
    const record = (await readRecord(cluster.jobs, "moved"))!.record;
    assert.deepEqual([record.priority, record.moves], [-3, 1]);
    await cluster.js.publish(cluster.names.queueSubject([], 2), encode({ name: "moved", id: record.id }));
  } finally {
    await cluster.nc.close();
  }
  await queueHolds(server.url, (n) => n >= 4, "at least 4 messages");
  assert.equal(await queueMessages(server.url), 4);
  await using _worker = await startWorker(server.url, ["--workers", "1"]);
  await blocker.result();
  assert.deepEqual(await startOrder([moved, later]), ["later", "moved"]);
  assert.equal((await moved.result()).attempts, 1);
  await queueHolds(server.url, (n) => n === 0, "no message"); // A worker acks just after writing the record.
});

Deno.test("over NATS, 30 jobs of 30 priorities (more lanes than a worker pulls from at once) all run, highest first", async () => {
  await using server = await startNatsServer();
  await using manager = await NatsJobManager.connect({ nats: { servers: server.url } });
  const count = MAX_PRIORITY_LANES + 14;
  const priorities = Array.from({ length: count }, (_, index) => -index * 7); // 0, -7, -14, …: one lane each.
  const jobs = priorities.map((priority, index) =>
    manager.addJob({ name: `job-${String(index).padStart(2, "0")}`, script: fixture("echo.py"), priority })
  );
  await queueHolds(server.url, (n) => n >= count, "every job's message");
  await using _worker = await startWorker(server.url, ["--workers", "1"]);
  assert.deepEqual(await startOrder(jobs), expectedOrder(priorities));
  await queueHolds(server.url, (n) => n === 0, "no message"); // A worker acks just after writing the record.
});

Deno.test("over NATS, a job another host moves or kills while queued leaves no stale message: the host that added it removes it", async () => {
  await using server = await startNatsServer();
  await using adder = await NatsJobManager.connect({ nats: { servers: server.url } });
  await using other = await NatsJobManager.connect({ nats: { servers: server.url } });
  const moved = adder.addJob({ name: "moved", script: fixture("echo.py") });
  const killed = adder.addJob({ name: "killed", script: fixture("echo.py") });
  await waitFor(
    () => other.getJob("moved") !== undefined && other.getJob("killed") !== undefined,
    30_000,
    "the other host to see both jobs",
  );
  await queueHolds(server.url, (n) => n === 2, "2 messages");
  // The other host does not know where the messages are: the adding host sees the records change and removes them.
  await other.setPriority("moved", 4);
  await other.killJob("killed");
  await queueHolds(server.url, (n) => n === 1, "1 message"); // Only the moved job's new message.
  assert.equal(killed.state, "DROPPED");
  await using _worker = await startWorker(server.url, ["--workers", "1"]);
  assert.equal((await moved.result()).attempts, 1);
  await queueHolds(server.url, (n) => n === 0, "no message"); // A worker acks just after writing the record.
});

/** Wait (30 s at most) until the default namespace's work queue holds a number of messages that `fits`. */
function queueHolds(url: string, fits: (messages: number) => boolean, what: string): Promise<void> {
  return waitFor(async () => fits(await queueMessages(url)), 30_000, `the queue to hold ${what}`);
}

/** How many messages the default namespace's work queue holds. */
async function queueMessages(url: string): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(new Names("default").jobsStream)).state.messages;
  } finally {
    await nc.close();
  }
}
