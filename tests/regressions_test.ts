/** Defects found in review, each pinned by a test (real Blender). */

import { deepStrictEqual, equal, match, ok, throws } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { InvalidJobError, JobDroppedError, JobManager } from "../mod.ts";
import { fixture, isAlive } from "./_helpers.ts";

Deno.test("a process the script puts in a session of its own does not hold the job open", async () => {
  await using manager = new JobManager();
  const pidFile = join(manager.workRoot, "daemon.json");
  const job = manager.addJob({ script: fixture("daemon.py"), passedData: { pid_file: pidFile }, timeout: 20_000 });
  const result = await job.result();
  equal(result.pythonData.started, true);
  const { child } = JSON.parse(await Deno.readTextFile(pidFile));
  ok(isAlive(child), "the daemon outlives the job: it left Blender's process group on purpose");
  Deno.kill(child, "SIGKILL");
});

Deno.test("reusing a job name right away never shares a job directory", async () => {
  await using manager = new JobManager({ maxWorkers: 2 });
  for (let i = 0; i < 4; i++) {
    const job = manager.addJob({ name: "same", script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } });
    equal((await job.result()).attempts, 1);
  }
});

Deno.test("an old handle does not kill the new job that reused its name", async () => {
  await using manager = new JobManager();
  const first = manager.addJob({ name: "reused", script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } });
  await first.result();
  const second = manager.addJob({ name: "reused", script: fixture("progress.py"), passedData: { steps: 2 } });
  await first.kill();
  equal((await second.result()).pythonData.steps, 2);
});

Deno.test("timeouts a timer cannot hold, folders as log files and non-.blend blend files are rejected", async () => {
  await using manager = new JobManager();
  throws(() => manager.addJob({ script: fixture("echo.py"), timeout: 30 * 24 * 3600 * 1000 }), InvalidJobError);
  throws(() => new JobManager({ timeout: 2 ** 31 }), RangeError);
  throws(() => manager.addJob({ script: fixture("echo.py"), logFile: manager.workRoot }), InvalidJobError);
  throws(() => manager.addJob({ script: fixture("echo.py"), blendFile: fixture("echo.py") }), /not a \.blend file/);
  deepStrictEqual(manager.getJobNames(), []);
  equal(manager.health.status, "ok");
});

Deno.test("a root kept with keepFiles survives the next manager", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kept = new JobManager({ workDir: dir, keepFiles: true });
    await kept.close();
    await using _next = new JobManager({ workDir: dir });
    ok(existsSync(kept.workRoot), "the kept work root was swept");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scripts run as a real __main__ module; bgproc works from threads and takes any real number", async () => {
  await using manager = new JobManager();
  const job = manager.addJob({ script: fixture("python_features.py") });
  const { pythonData } = await job.result();
  deepStrictEqual(pythonData, { restored_size: 2.5, thread_errors: [], main_is_module: true });
});

Deno.test("the report keeps a chained exception's cause", async () => {
  await using manager = new JobManager();
  const error = await manager.addJob({ script: fixture("raise_chained.py") }).result().then(() => undefined, (e) => e);
  ok(error instanceof JobDroppedError);
  match(error.report, /FileNotFoundError: .*\/no\/such\/settings\.json/);
  match(error.report, /direct cause of the following exception/);
  match(error.report, /RuntimeError: could not load the settings/);
  ok(!error.report.includes("_runner.py"), "bgproc's own frames leak into the report");
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
