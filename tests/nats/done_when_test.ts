/**
 * Issue 12's "done when": a host on the same machine as three workers runs a
 * 30-job batch from the command line (`bgproc batch --nats`); SIGKILL of one
 * worker's process group mid-batch loses nothing.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { NatsJobManager } from "../../src/nats/mod.ts";
import { fixture } from "../_helpers.ts";
import { bgprocCommand, startNatsServer, startWorker, type WorkerProcess } from "./_server.ts";

const WORKER_ARGS = ["--namespace", "done", "--workers", "1", "--mode", "pool", "--ack-wait", "2000"];

Deno.test("bgproc batch --nats: 30 jobs on three workers, one SIGKILLed mid-batch, all 30 complete", async () => {
  await using server = await startNatsServer();
  const workers: WorkerProcess[] = [];
  for (let i = 0; i < 3; i++) workers.push(await startWorker(server.url, WORKER_ARGS));
  await using observer = await NatsJobManager.connect({ nats: { servers: server.url, namespace: "done" } });
  const dir = await Deno.makeTempDir({ prefix: "bgproc-nats-done-" });
  try {
    const idOf = (worker: WorkerProcess) => worker.output.find((line) => line.includes(" ready "))!.split(" ")[2]!;
    const entries = Array.from(
      { length: 30 },
      // Long enough that the job seen running on the victim is still running when the kill lands: with 0.8 s it
      // finished first once on a loaded machine (the observer sees records a little late) and ran only once.
      (_, i) => ({ name: `done-${i}`, script: fixture("sleep.py"), data: { seconds: 2.5 } }),
    );
    await Deno.writeTextFile(join(dir, "jobs.jsonc"), JSON.stringify(entries));
    const batch = bgprocCommand(
      ["batch", join(dir, "jobs.jsonc"), "--nats", server.url, "--namespace", "done", "--json"],
      { stdout: "piped", stderr: "piped" },
    ).spawn();
    const output = batch.output();

    // Mid-batch: some jobs done, and the victim running one.
    const victim = workers[0]!;
    let running: string | undefined;
    for (let i = 0; i < 3000 && running === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (observer.counts.completed < 3) continue;
      running = observer.getJobNames({ state: "ACTIVE" }).find((name) => observer.getJobWorker(name) === idOf(victim));
    }
    assert.ok(running !== undefined, "the victim never ran a job mid-batch");
    await victim.killGroup();
    await Deno.remove(victim.workDir, { recursive: true });

    const { code, stdout, stderr } = await output;
    const errors = new TextDecoder().decode(stderr);
    assert.equal(code, 0, errors);
    const rows = JSON.parse(new TextDecoder().decode(stdout)) as { name: string; state: string }[];
    assert.deepEqual(rows.map((row) => [row.name, row.state]), entries.map((e) => [e.name, "COMPLETED"]));
    for (const entry of entries) assert.ok(errors.includes(`${entry.name}: COMPLETED`), errors);
    // The killed worker's job ran again elsewhere.
    assert.ok((observer.getJob(running)?.attempts ?? 0) >= 2);
    assert.notEqual(observer.getJobWorker(running), idOf(victim));
    assert.equal(new Set(entries.map((e) => observer.getJobWorker(e.name))).size >= 2, true);
  } finally {
    for (const worker of workers.slice(1)) await worker[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});
