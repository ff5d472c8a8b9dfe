/**
 * Priorities: queued jobs start higher first, first in, first out within a priority; a queued job's priority can be
 * changed (over NATS: tests/nats/priority_test.ts).
 */

import assert from "node:assert/strict";
import { InvalidJobError, JobManager } from "../mod.ts";
import { WaitingJobs } from "../src/local/waiting.ts";
import { fixture } from "./_helpers.ts";

Deno.test("the queue: higher priority first, first in first out within one, due retries before both; a moved job keeps its place by arrival", () => {
  const waiting = new WaitingJobs();
  const job = (name: string, priority?: number) => ({
    name,
    dir: name,
    specJson: "{}",
    blendFile: null,
    timeoutMs: 0,
    logFile: null,
    ...(priority === undefined ? {} : { priority }),
  });
  for (const [name, priority] of [["a", 0], ["b", 5], ["c", undefined], ["d", 5], ["e", -1], ["f", 2]] as const) {
    waiting.enqueue(job(name, priority));
  }
  assert.equal(waiting.reprioritize("c", 5), true); // c came before d: it goes before d among the 5s.
  assert.equal(waiting.reprioritize("nope", 1), false);
  waiting.addDue({ job: job("retry"), attempt: 2, progress: 0 });
  const order: string[] = [];
  for (let next = waiting.takeNext(); next !== undefined; next = waiting.takeNext()) order.push(next.job.name);
  assert.deepEqual(order, ["retry", "b", "c", "d", "f", "a", "e"]);
});

Deno.test("20 queued jobs with mixed priorities run in priority order on one slot; setPriority moves a queued job", async () => {
  await using manager = new JobManager({ mode: "fork", maxWorkers: 1 });
  const started: string[] = [];
  const events = (async () => {
    for await (const event of manager.events()) {
      if (event.type === "state" && event.state === "ACTIVE") started.push(event.name);
    }
  })();
  // The slot is busy while the others queue up.
  const blocker = manager.addJob({ name: "blocker", script: fixture("sleep.py"), passedData: { seconds: 1.5 } });
  const priorities = [0, 3, -2, 3, 1, 0, 7, -2, 1, 3, 0, 5, 7, -1, 2, 0, 5, 1, -2, 4];
  const jobs = priorities.map((priority, index) =>
    manager.addJob({ name: `job-${String(index).padStart(2, "0")}`, script: fixture("echo.py"), priority })
  );
  assert.equal(jobs[5]!.priority, 0);
  await manager.setPriority("job-05", 100); // Queued still: it goes first.
  assert.equal(jobs[5]!.priority, 100);
  await Promise.all([blocker, ...jobs].map((job) => job.result()));
  await manager.close();
  await events;
  const expected = priorities.map((priority, index) => ({ index, priority: index === 5 ? 100 : priority }))
    .sort((a, b) => b.priority - a.priority || a.index - b.index)
    .map(({ index }) => `job-${String(index).padStart(2, "0")}`);
  assert.deepEqual(started, ["blocker", ...expected]);
  await assert.rejects(manager.setPriority("blocker", 1), /as it is COMPLETED, not QUEUED/);
});

Deno.test("a priority must be an integer of at most 9 digits, locally and over NATS", async () => {
  await using manager = new JobManager({ mode: "process" });
  assert.throws(() => manager.addJob({ script: fixture("echo.py"), priority: 1.5 }), InvalidJobError);
  assert.throws(() => manager.addJob({ script: fixture("echo.py"), priority: "high" as unknown as number }), /integer/);
  await using nats = new JobManager({ nats: { servers: "nats://127.0.0.1:1" } });
  assert.throws(() => nats.addJob({ script: fixture("echo.py"), priority: 1e9 }), InvalidJobError);
  // Not connected yet: the job waits, and its priority changes there.
  const waiting = nats.addJob({ name: "waiting", script: fixture("echo.py"), priority: 1 });
  await nats.setPriority("waiting", 3);
  assert.equal(waiting.priority, 3);
  await nats.close().catch(() => {});
});
