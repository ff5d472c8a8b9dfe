/** sys.exit, SIGKILL from outside, and Blender's own children: each classified, nothing left, next job runs. */

import { equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { JobDroppedError, JobManager } from "../../mod.ts";
import { fixture, isAlive, MODES, waitFor } from "../_helpers.ts";

async function nextJobRuns(manager: JobManager): Promise<void> {
  const next = manager.addJob({ script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } });
  equal((await next.result()).pythonData.steps, 1, "the next job on the same manager failed");
}

for (const mode of MODES) {
  Deno.test(`${mode}: sys.exit(2) is a Python error naming the exit; sys.exit(0) completes`, async () => {
    await using manager = new JobManager({ mode });
    const error = await manager.addJob({ script: fixture("sys_exit.py"), passedData: { code: 2 } }).result().then(
      () => undefined,
      (e) => e,
    );
    ok(error instanceof JobDroppedError);
    equal(error.reason, "error");
    equal(error.pythonError?.type, "SystemExit");
    match(error.report, /sys\.exit\(2\)/);
    const ok0 = await manager.addJob({ script: fixture("sys_exit.py"), passedData: { code: 0 } }).result();
    equal(ok0.pythonData.before_exit, true);
    await nextJobRuns(manager);
  });
}

for (const mode of MODES) {
  Deno.test(`${mode}: SIGKILL from outside is a crash named SIGKILL, and the next job runs`, async () => {
    await using manager = new JobManager({ mode });
    const pidFile = join(manager.workRoot, "pid");
    const job = manager.addJob({ script: fixture("sleep.py"), passedData: { pid_file: pidFile } });
    await waitFor(() => job.progress >= 0.1, 20_000, "the job to start");
    Deno.kill(Number(await Deno.readTextFile(pidFile)), "SIGKILL");
    await rejects(job.result(), (error: JobDroppedError) => {
      equal(error.reason, "crashed");
      equal(error.signal, "SIGKILL");
      return true;
    });
    await nextJobRuns(manager);
  });
}

for (const mode of MODES) {
  Deno.test(`${mode}: killJob ends what the script started, not just Blender`, async () => {
    await using manager = new JobManager({ mode });
    const pidFile = join(manager.workRoot, "pids.json");
    const job = manager.addJob({ script: fixture("spawn_child.py"), passedData: { pid_file: pidFile } });
    await waitFor(() => job.progress >= 0.1, 20_000, "the job to start");
    const pids = JSON.parse(await Deno.readTextFile(pidFile));
    ok(isAlive(pids.child));
    await job.kill();
    equal(isAlive(pids.blender), false);
    await waitFor(() => !isAlive(pids.child), 5_000, "the script's child to end");
    await nextJobRuns(manager);
  });
}

for (const mode of MODES) {
  Deno.test(`${mode}: a Python error is not retried when retry.on leaves it out; a crash is`, async () => {
    await using manager = new JobManager({ mode, maxAttempts: 3, retry: { on: ["crashed"], delayMs: 10 } });
    const counterFile = join(manager.workRoot, "attempts.json");
    const error = await manager.addJob({
      script: fixture("flaky.py"),
      passedData: { counter_file: counterFile, fail_times: 5 },
    }).result().then(() => undefined, (e) => e);
    ok(error instanceof JobDroppedError);
    equal(error.attempts, 1);
    const crash = await manager.addJob({ script: fixture("crash.py"), passedData: { how: "exit" } }).result().then(
      () => undefined,
      (e) => e,
    );
    ok(crash instanceof JobDroppedError);
    equal(crash.reason, "crashed");
    equal(crash.attempts, 3);
    await nextJobRuns(manager);
  });
}
