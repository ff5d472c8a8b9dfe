/** The supervisor's policies with a scripted runner and a fake clock: no Blender, no real time. */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { startResults } from "../src/local/results_actor.ts";
import type { JobEvent, SupervisedJob, SupervisorMessage } from "../src/local/supervisor.ts";
import { startSupervisor } from "../src/local/supervisor.ts";
import { RETRYABLE_REASONS } from "../src/local/policy.ts";
import type { ManagerHealth } from "../src/types.ts";
import type { ActorRef } from "../src/_actor.ts";
import { FakeClock, ScriptedRunner, settle } from "./_scripted_runner.ts";

interface Harness {
  readonly runner: ScriptedRunner;
  readonly clock: FakeClock;
  readonly events: JobEvent[];
  readonly health: ManagerHealth[];
  readonly supervisor: ActorRef<SupervisorMessage>;
  submit(name: string, timeoutMs?: number): void;
  endOf(name: string): JobEvent | undefined;
  close(): Promise<void>;
}

function harness(options: { maxWorkers?: number; maxAttempts?: number; maxFailures?: number } = {}): Harness {
  const runner = new ScriptedRunner();
  const clock = new FakeClock();
  const events: JobEvent[] = [];
  const health: ManagerHealth[] = [];
  const results = startResults(() => {});
  const supervisor = startSupervisor({
    mode: "test",
    maxWorkers: options.maxWorkers ?? 1,
    maxAttempts: options.maxAttempts ?? 1,
    retry: { on: new Set(RETRYABLE_REASONS), initialDelayMs: 1_000, factor: 2, maxDelayMs: 60_000 },
    intensity: { maxFailures: options.maxFailures ?? 5, periodMs: 10_000 },
    jobsRoot: "/nonexistent/jobs",
    resultsRoot: "/nonexistent/results",
    outputLimit: 1 << 16,
    resultLimit: 1 << 20,
    keepFiles: true,
    runner,
    clock,
    results,
    publish: (event) => events.push(event),
    publishHealth: (value) => health.push(value),
  });
  return {
    runner,
    clock,
    events,
    health,
    supervisor,
    submit(name, timeoutMs = 0) {
      const job: SupervisedJob = { name, dir: name, specJson: "{}", blendFile: null, timeoutMs, logFile: null };
      supervisor.tell({ type: "submit", job });
    },
    endOf: (name) =>
      events.find((event) => event.name === name && (event.type === "completed" || event.type === "dropped")),
    async close() {
      await supervisor.ask<void>((reply) => ({ type: "close", reply }));
      await supervisor.stop();
      await results.stop();
    },
  };
}

Deno.test("supervisor: a retry waits out its backoff, growing by the factor", async () => {
  const h = harness({ maxAttempts: 3 });
  h.submit("flaky");
  await settle();
  h.runner.attempts[0]?.fail("crashed");
  await settle();
  equal(h.runner.attempts.length, 1);
  h.clock.advance(999);
  await settle();
  equal(h.runner.attempts.length, 1, "the retry started before its 1000 ms backoff");
  h.clock.advance(1);
  await settle();
  equal(h.runner.attempts.length, 2);
  equal(h.runner.attempts[1]?.plan.attempt, 2);
  h.runner.attempts[1]?.fail("error");
  await settle();
  h.clock.advance(1_999);
  await settle();
  equal(h.runner.attempts.length, 2, "the second retry did not wait 2000 ms");
  h.clock.advance(1);
  await settle();
  h.runner.attempts[2]?.complete({ ok: true });
  await settle();
  const end = h.endOf("flaky");
  ok(end?.type === "completed");
  equal(end.result.attempts, 3);
  deepStrictEqual(h.events.filter((event) => event.type === "retrying").map((event) => event.delayMs), [1_000, 2_000]);
  await h.close();
});

Deno.test("supervisor: a failure whose reason is not retryable is not retried", async () => {
  const h = harness({ maxAttempts: 3 });
  h.submit("tooBig");
  await settle();
  h.runner.attempts[0]?.fail("result-too-large");
  await settle();
  const end = h.endOf("tooBig");
  ok(end?.type === "dropped");
  equal(end.error.reason, "result-too-large");
  equal(h.clock.pending, 0);
  await h.close();
});

Deno.test("supervisor: too many start-up failures open the circuit; it closes after the period", async () => {
  const h = harness({ maxFailures: 2 });
  for (const name of ["a", "b", "c"]) h.submit(name);
  for (let i = 0; i < 3; i++) {
    await settle();
    h.runner.running()[0]?.fail("start-failed", "Blender would not start", true);
  }
  await settle();
  equal(h.health.at(-1)?.status, "failing");
  h.submit("d");
  await settle();
  const dropped = h.endOf("d");
  ok(dropped?.type === "dropped");
  equal(dropped.error.reason, "start-failed");
  match(dropped.error.summary, /keeps failing at start-up/);
  equal(h.runner.attempts.length, 3, "a job was started while the circuit was open");
  h.clock.advance(10_000);
  h.submit("e");
  await settle();
  equal(h.runner.attempts.length, 4);
  h.runner.attempts[3]?.complete();
  await settle();
  equal(h.health.at(-1)?.status, "ok");
  await h.close();
});

Deno.test("supervisor: a timeout kills the attempt at its due time, by the clock", async () => {
  const h = harness();
  h.submit("slow", 5_000);
  await settle();
  h.clock.advance(4_999);
  await settle();
  equal(h.runner.attempts[0]?.killedWith, undefined);
  h.clock.advance(1);
  await settle();
  equal(h.runner.attempts[0]?.killedWith, "timed-out");
  const end = h.endOf("slow");
  ok(end?.type === "dropped");
  equal(end.error.reason, "timed-out");
  await h.close();
});

Deno.test("supervisor: a Job actor that crashes drops its job as crashed, frees the slot, and the next job runs", async () => {
  const h = harness({ maxWorkers: 1 });
  h.submit("doomed");
  h.submit("next");
  await settle();
  // An event the Job actor does not know makes its behaviour throw.
  h.runner.attempts[0]?.emit({ type: "bogus" } as never);
  await settle();
  equal(h.runner.attempts[0]?.killedWith, "killed", "the crashed actor's attempt was not ended");
  const end = h.endOf("doomed");
  ok(end?.type === "dropped");
  equal(end.error.reason, "crashed");
  match(end.error.summary, /Job actor failed/);
  equal(h.runner.attempts.length, 2, "the slot was not freed");
  h.runner.attempts[1]?.complete({ n: 1 });
  await settle();
  equal(h.endOf("next")?.type, "completed");
  await h.close();
});

Deno.test("supervisor: a larger maxWorkers starts queued jobs; a smaller one lets running ones finish", async () => {
  const h = harness({ maxWorkers: 1 });
  for (const name of ["a", "b", "c", "d"]) h.submit(name);
  await settle();
  equal(h.runner.running().length, 1);
  h.supervisor.tell({ type: "configure", maxWorkers: 3 });
  await settle();
  equal(h.runner.running().length, 3);
  h.supervisor.tell({ type: "configure", maxWorkers: 1 });
  await settle();
  equal(h.runner.running().length, 3, "running attempts were stopped");
  h.runner.running()[0]?.complete();
  await settle();
  equal(h.runner.running().length, 2, "a new job started above maxWorkers");
  for (const attempt of h.runner.running()) attempt.complete();
  await settle();
  equal(h.runner.running().length, 1);
  h.runner.running()[0]?.complete();
  await settle();
  equal(h.events.filter((event) => event.type === "completed").length, 4);
  await h.close();
});

Deno.test("supervisor: close kills what runs and drops what waits", async () => {
  const h = harness({ maxWorkers: 1 });
  h.submit("running");
  h.submit("queued");
  await settle();
  await h.close();
  equal(h.runner.attempts[0]?.killedWith, "killed");
  const queued = h.endOf("queued");
  ok(queued?.type === "dropped");
  equal(queued.error.reason, "killed");
});

Deno.test("supervisor: a warm Blender that dies on its own is restarted by its parent, until the restart intensity", async () => {
  const h = harness({ maxFailures: 1 });
  const exit = { kind: "zygote" as const, id: "1", factoryStartup: true, how: "SIGKILL" };
  h.runner.warmExit?.(exit);
  await settle();
  deepStrictEqual(h.runner.restarts, [true], "the first death is restarted");
  deepStrictEqual(h.health, []);
  h.runner.warmExit?.({ ...exit, id: "2", factoryStartup: false });
  await settle();
  deepStrictEqual(h.runner.restarts, [true], "past the intensity: no restart");
  const health: ManagerHealth[] = h.health;
  equal(health.length, 1);
  const failing = health[0]!;
  ok(failing.status === "failing" && failing.reason.includes("zygote 2 exited on its own (SIGKILL)"), failing.status);
  h.submit("meanwhile");
  await settle();
  equal(h.endOf("meanwhile")?.type, "dropped", "jobs are not started while it is open");
  await h.close();
});
