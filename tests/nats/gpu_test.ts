/** `bgproc worker --gpus 0,1`: each of the worker's slots gives its jobs its own GPU (see tests/gpu_test.ts). */

import assert from "node:assert/strict";
import { NatsJobManager } from "../../src/nats/manager.ts";
import { fixture } from "../_helpers.ts";
import { startNatsServer, startWorker } from "./_server.ts";

Deno.test("bgproc worker --gpus 0,1 --workers 2: two jobs at once over NATS, one on each GPU; it advertises its GPUs and counts", async () => {
  await using server = await startNatsServer();
  await using _worker = await startWorker(server.url, ["--workers", "2", "--gpus", "0,1"]);
  await using manager = await NatsJobManager.connect({ nats: { servers: server.url } });
  const jobs = [0, 1].map(() => manager.addJob({ script: fixture("gpu_probe.py"), passedData: { sleep: 1 } }));
  const devices = (await Promise.all(jobs.map((job) => job.result()))).map((result) => result.pythonData.cuda);
  assert.deepEqual(devices.sort(), ["0", "1"]);
  // The worker advertises its GPUs and what it ran (the dashboard's workers).
  let info = (await manager.workers())[0]!;
  for (let i = 0; i < 50 && info.completed !== 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    info = (await manager.workers())[0]!;
  }
  assert.deepEqual([info.gpus, info.completed, info.failed], [["0", "1"], 2, 0]);
});
