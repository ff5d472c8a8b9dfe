/** Closing a manager ends its Blender processes and removes its files; killAll ends everything. */

import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobDroppedError, JobManager } from "../mod.ts";
import { jobDirName } from "../src/local/job/dir.ts";
import { fixture, isAlive, waitFor } from "./_helpers.ts";

Deno.test("close() kills running jobs, drops queued ones and removes the work root", async () => {
  const manager = new JobManager({ maxWorkers: 1 });
  const pidFile = join(Deno.makeTempDirSync(), "pid");
  const running = manager.addJob({ script: fixture("sleep.py"), passedData: { pid_file: pidFile } });
  const queued = manager.addJob({ script: fixture("sleep.py") });
  await waitFor(() => running.progress >= 0.1, 20_000, "the job to start");
  const pid = Number(await Deno.readTextFile(pidFile));
  await manager.close();
  equal(isAlive(pid), false);
  ok(!existsSync(manager.workRoot), "the work root is still there");
  await rejects(running.result(), (error: JobDroppedError) => error.reason === "killed");
  await rejects(queued.result(), (error: JobDroppedError) => error.reason === "killed");
  await manager.close();
  equal(manager.getJobState(queued.name), "DROPPED");
  Deno.removeSync(join(pidFile, ".."), { recursive: true });
});

Deno.test("killAll() ends every job, and the manager runs new ones afterwards", async () => {
  await using manager = new JobManager({ maxWorkers: 2 });
  const jobs = [1, 2, 3].map(() => manager.addJob({ script: fixture("sleep.py") }));
  await waitFor(() => manager.counts.active === 2, 20_000, "two jobs to start");
  await manager.killAll();
  for (const job of jobs) await rejects(job.result(), JobDroppedError);
  equal(manager.counts.dropped, 3);
  equal(manager.counts.availableWorkers, 2);
  const next = manager.addJob({ script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } });
  equal((await next.result()).attempts, 1);
});

Deno.test("keepFiles keeps the job directory with spec.json, result.json and progress", async () => {
  const manager = new JobManager({ keepFiles: true });
  try {
    const job = manager.addJob({ name: "kept", script: fixture("progress.py"), passedData: { steps: 2, pause: 0 } });
    await job.result();
    // <submission>-<name as ASCII>-<hash>: a reused name never shares one.
    const dir = join(manager.workRoot, "jobs", jobDirName(1, "kept"));
    const spec = JSON.parse(await Deno.readTextFile(join(dir, "spec.json")));
    equal(spec.version, 1);
    equal(spec.name, "kept");
    equal(JSON.parse(await Deno.readTextFile(join(dir, "result.json"))).pythonData.steps, 2);
    equal(await Deno.readTextFile(join(dir, "progress")), "1.0");
    manager.removeJob("kept");
    equal(manager.getJob("kept"), undefined);
  } finally {
    await manager.close();
    await Deno.remove(manager.workRoot, { recursive: true });
  }
});

Deno.test("after close, kill and killAll settle and python_data stays readable", async () => {
  const manager = new JobManager();
  const job = manager.addJob({ script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } });
  await job.result();
  await manager.close();
  await job.kill();
  await manager.killAll();
  deepStrictEqual(await manager.getRetrievedPythonData(job.name), { steps: 1 });
  throws(() => manager.addJob({ script: fixture("echo.py") }), /closed/);
});
