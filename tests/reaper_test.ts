/**
 * Nothing a job starts outlives it, in every mode: Blender is its job's child
 * subreaper, so a daemon that left the job's process group and session is
 * still found and killed when the job ends.
 */

import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { JobManager } from "../mod.ts";
import { fixture, isAlive, waitFor } from "./_helpers.ts";

for (const mode of ["process", "pool", "fork"] as const) {
  Deno.test(`${mode}: a double-forked setsid daemon a job leaves is gone when the job ends`, async () => {
    await using manager = new JobManager({ mode, maxWorkers: 1 });
    const pidFile = join(manager.workRoot, "daemon.pid");
    const job = manager.addJob({ script: fixture("double_fork_daemon.py"), passedData: { pid_file: pidFile } });
    const daemon = (await job.result()).pythonData.daemon as number;
    ok(daemon > 0);
    await waitFor(() => !isAlive(daemon), 5_000, `the daemon ${daemon} to be gone`);
  });

  Deno.test(`${mode}: a process a job starts in a session of its own does not outlive the job`, async () => {
    await using manager = new JobManager({ mode, maxWorkers: 1 });
    const pidFile = join(manager.workRoot, "daemon.json");
    const job = manager.addJob({ script: fixture("daemon.py"), passedData: { pid_file: pidFile }, timeout: 20_000 });
    equal((await job.result()).pythonData.started, true);
    const { child } = JSON.parse(await Deno.readTextFile(pidFile));
    await waitFor(() => !isAlive(child), 5_000, "the session leader to be gone");
  });
}

Deno.test("pool: a long-lived os.fork() child of a job dies with its job", async () => {
  await using manager = new JobManager({ mode: "pool", maxWorkers: 1 });
  const pidFile = join(manager.workRoot, "forked.pid");
  const job = manager.addJob({
    script: fixture("double_fork_daemon.py"),
    passedData: { pid_file: pidFile, fork_in_job: true },
  });
  const child = (await job.result()).pythonData.daemon as number;
  await waitFor(() => !isAlive(child), 5_000, "the forked child to be gone");
});
