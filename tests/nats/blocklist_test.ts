/**
 * A worker that keeps failing a job is kept away from it: with a real worker whose Blender always crashes on one script
 * (tests/fixtures/fragile.py crashes where BGPROC_TEST_CRASH=1), a job that crashed there is retried on the other
 * worker, not offered to the first again; and after three crashes of that script in a row the first worker blocklists
 * it (advertised), so the next job of it goes to another worker. Declining costs no attempt.
 */

import assert from "node:assert/strict";
import { NatsJobManager } from "../../src/nats/manager.ts";
import { openCluster } from "../../src/nats/_connection.ts";
import { readRecord } from "../../src/nats/_records.ts";
import { dirname } from "node:path";
import { createService } from "../../src/service/mod.ts";
import { fixture } from "../_helpers.ts";
import { startNatsServer, startWorker, type WorkerProcess } from "./_server.ts";

const ARGS = ["--namespace", "farm", "--mode", "process", "--workers", "1", "--max-attempts", "3"];
const idOf = (worker: WorkerProcess) => worker.output.find((line) => line.includes(" ready "))!.split(" ")[2]!;

Deno.test("a job that crashed on a worker goes to another; a script that keeps crashing on a worker is blocklisted there", async () => {
  await using server = await startNatsServer();
  const options = { nats: { servers: server.url, namespace: "farm" }, maxAttempts: 3, retry: { delayMs: 6000 } };
  await using manager = await NatsJobManager.connect(options);
  const cluster = await openCluster({ servers: server.url }, "farm");
  await using fragile = await startWorker(server.url, ARGS, { BGPROC_TEST_CRASH: "1" });
  const crashing = idOf(fragile);
  try {
    const job = manager.addJob({ name: "shot", script: fixture("fragile.py") });
    for (let i = 0; i < 600; i++) {
      if ((await readRecord(cluster.jobs, "shot"))?.record.failedOn?.includes(crashing)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // The retry waits out its backoff: a sound worker joins meanwhile, and the retry is its.
    let result;
    {
      await using sound = await startWorker(server.url, ARGS);
      result = await job.result();
      assert.equal(result.attempts, 2, "the retry was the second attempt: no attempt was spent declining");
      const ran = result.timings.attempts.map((attempt) => attempt.ranOn);
      assert.match(ran[0]!, new RegExp(`^worker ${crashing}`));
      assert.match(ran[1]!, new RegExp(`^worker ${idOf(sound)}`));
      assert.deepEqual(result.timings.attempts.map((attempt) => attempt.outcome), ["crashed", "completed"]);
    }
    assert.deepEqual((await readRecord(cluster.jobs, "shot"))!.record.failedOn, [crashing]);

    // Alone, the crashing worker runs three more jobs of the script, each crashing: then it blocklists the script.
    for (const name of ["one", "two", "three"]) {
      const error = await manager.addJob({ name, script: fixture("fragile.py"), maxAttempts: 1 }).result()
        .then(() => null, (error) => error);
      assert.equal(error?.reason, "crashed", String(error));
    }
    let blocked: readonly { name: string }[] = [];
    for (let i = 0; i < 100 && blocked.length === 0; i++) {
      blocked = (await manager.workers()).find((worker) => worker.id === crashing)?.blocked ?? [];
      if (blocked.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(blocked.map((entry) => entry.name), ["fragile.py"]);
    // The service's farm view shows it with the worker (GET /workers, the Farm tab's Blocked column).
    {
      await using service = createService({ manager, scriptsDir: dirname(fixture("fragile.py")) });
      const farm = await (await service.fetch(new Request("http://127.0.0.1/workers"))).json();
      const listed = farm.workers.find((worker: { name: string }) => worker.name === crashing);
      assert.deepEqual(listed.blocked.map((entry: { name: string }) => entry.name), ["fragile.py"]);
    }
    await using other = await startWorker(server.url, ARGS);
    const next = await manager.addJob({ name: "four", script: fixture("fragile.py"), maxAttempts: 1 }).result();
    assert.equal(next.attempts, 1);
    assert.match(next.timings.attempts[0]!.ranOn, new RegExp(`^worker ${idOf(other)}`));
  } finally {
    await cluster.nc.drain();
  }
});
