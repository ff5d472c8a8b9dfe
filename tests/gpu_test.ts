/**
 * GPU slots: with `gpus`, each slot's jobs get their own device (the drivers' environment, Cycles' preferences), in
 * every mode. This machine has no GPU: what is checked is that the assignment reaches the job inside Blender, and that
 * the job's output says Cycles found no GPU; whether a driver then renders on that device is not checked here.
 */

import assert from "node:assert/strict";
import { JobManager } from "../mod.ts";
import { fixture, MODES } from "./_helpers.ts";
import { bgproc } from "./_cli.ts";

for (const mode of MODES) {
  Deno.test(`gpus in ${mode} mode: two jobs at once, each slot's device in the job's environment`, async () => {
    await using manager = new JobManager({ mode, maxWorkers: 2, gpus: ["0", "1"] });
    const jobs = [0, 1].map(() => manager.addJob({ script: fixture("gpu_probe.py") }));
    const results = await Promise.all(jobs.map((job) => job.result()));
    const seen = results.map((result) => result.pythonData).sort((a, b) =>
      String(a.cuda).localeCompare(String(b.cuda))
    );
    assert.deepEqual(seen, [
      { cuda: "0", hip: "0", oneapi: "level_zero:0", computeType: "NONE" },
      { cuda: "1", hip: "1", oneapi: "level_zero:1", computeType: "NONE" },
    ]);
    for (const result of results) {
      assert.match(result.stderr, /bgproc: warning: GPU [01] was given to this job, but Cycles sees no GPU here/);
    }
    // A later job gets its slot's device again, not the last job's.
    const third = await manager.addJob({ script: fixture("gpu_probe.py"), passedData: { sleep: 0 } }).result();
    assert.ok(third.pythonData.cuda === "0" || third.pythonData.cuda === "1");
  });
}

Deno.test("without gpus a job's environment names no device; bad gpus are refused; bgproc info lists Cycles' devices", async () => {
  await using manager = new JobManager({ mode: "process" });
  const result = await manager.addJob({ script: fixture("gpu_probe.py"), passedData: { sleep: 0 } }).result();
  assert.equal(result.pythonData.cuda, Deno.env.get("CUDA_VISIBLE_DEVICES") ?? null);
  assert.doesNotMatch(result.stderr, /GPU/);
  assert.throws(() => new JobManager({ gpus: ["0; rm -rf /"] }), /not a device id/);
  assert.throws(() => new JobManager({ gpus: "0" as unknown as string[] }), /'gpus' must be an array/);
  const info = await bgproc("info", "--json");
  assert.equal(info.code, 0, info.stderr);
  assert.match(JSON.parse(info.stdout).devices, /^CPU: /);
});
