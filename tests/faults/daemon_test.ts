/**
 * A daemon a job leaves (double fork, `setsid`, its fds on /dev/null) is gone after every abnormal end of the job:
 * a timeout, a kill, `os._exit(3)`, `os._exit(0)` without a result, the job SIGKILLing itself. Blender's own subreaper
 * dies with Blender in these cases; the cgroup per Blender ends the rest (issue 20, item 2): the host's own under
 * `-A`, else the one Blender makes itself, guarded (`python/bgproc/_jail.py`; tests/permissions_test.ts runs this file
 * under the README's permissions).
 */

import { equal, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobDroppedError, JobManager } from "../../mod.ts";
import { fixture, isAlive, waitFor } from "../_helpers.ts";

/**
 * Whether cgroups (v2) may be made where this host is: without, the first job's log says so instead. Under the
 * README's permissions (tests/permissions_test.ts runs this file so) Deno reads no /proc: the probe runs in a
 * `deno eval`, which has every permission.
 */
function cgroupsWritable(): boolean {
  try {
    return probeCgroups();
  } catch {
    const code = `console.log((${probeCgroups.toString()})())`;
    const output = new Deno.Command(Deno.execPath(), { args: ["eval", code], stderr: "null" }).outputSync();
    return new TextDecoder().decode(output.stdout).trim() === "true";
  }
}

/** The probe; self-contained (it also runs in a `deno eval`); throws when Deno may not look. */
function probeCgroups(): boolean {
  const mount = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").map((line) => line.split(" "))
    .find((fields) => fields[fields.indexOf("-") + 1] === "cgroup2")?.[4];
  const own = Deno.readTextFileSync("/proc/self/cgroup").split("\n").find((line) => line.startsWith("0::"));
  if (mount === undefined || own === undefined) return false;
  const probe = `${mount}${own.slice(3)}/bgproc-probe-${Deno.pid}`.replace("//", "/");
  try {
    Deno.mkdirSync(probe);
    Deno.removeSync(probe);
    return true;
  } catch {
    return false;
  }
}

const ENDS = ["timeout", "kill", "exit3", "exit0", "self_kill"] as const;

for (const mode of ["process", "pool", "fork"] as const) {
  Deno.test({
    name: `${mode}: a daemon the job leaves is gone after a timeout, a kill, os._exit(3), os._exit(0) or a self-kill`,
    ignore: !cgroupsWritable(), // Needs a cgroup2 the host may write: CI and root have one.
    async fn() {
      await using manager = new JobManager({ mode, maxWorkers: 1 });
      for (const end of ENDS) {
        const pidFile = join(manager.workRoot, `daemon-${end}.pid`);
        const job = manager.addJob({
          script: fixture("double_fork_daemon.py"),
          passedData: { pid_file: pidFile, end: end === "timeout" || end === "kill" ? "wait" : end },
          timeout: end === "timeout" ? 4_000 : 0,
        });
        if (end === "kill") {
          await waitFor(() => existsSync(pidFile), 60_000, "the daemon to start");
          await job.kill();
        }
        const error = await job.result().then(() => null, (error: JobDroppedError) => error);
        ok(error instanceof JobDroppedError, `${end}: the job completed`);
        const daemon = Number(await Deno.readTextFile(pidFile));
        ok(daemon > 0);
        try {
          await waitFor(() => !isAlive(daemon), 5_000, `${end}: the daemon ${daemon} to be gone`);
        } finally {
          if (isAlive(daemon)) Deno.kill(daemon, "SIGKILL");
        }
        equal(manager.getJobState(job.name), "DROPPED");
      }
    },
  });
}

Deno.test({
  name: "fork: a job that kills its zygote leaves no daemon behind, and the next job gets a new zygote",
  ignore: !cgroupsWritable(), // Needs a cgroup2 the host may write: CI and root have one.
  async fn() {
    await using manager = new JobManager({ mode: "fork", maxWorkers: 1 });
    const pidFile = join(manager.workRoot, "daemon.pid");
    const job = manager.addJob({
      script: fixture("double_fork_daemon.py"),
      passedData: { pid_file: pidFile, end: "kill_parent" },
    });
    const error = await job.result().then(() => null, (error: JobDroppedError) => error);
    ok(error instanceof JobDroppedError, "the job completed");
    equal(error.reason, "crashed");
    const daemon = Number(await Deno.readTextFile(pidFile));
    try {
      await waitFor(() => !isAlive(daemon), 5_000, `the daemon ${daemon} to be gone with its zygote`);
    } finally {
      if (isAlive(daemon)) Deno.kill(daemon, "SIGKILL");
    }
    equal((await manager.addJob({ script: fixture("echo.py") }).result()).pythonData.name, "__main__");
  },
});
