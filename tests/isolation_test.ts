/**
 * Isolation: job A leaves one kind of process state behind, then job B runs
 * on the same slot and must see what a first job sees. In fork mode no leak
 * can reach B (A's child is gone). In pool mode each leak is undone, or the
 * worker is retired before B and A's log says why.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobDroppedError, JobManager } from "../mod.ts";
import { fixture, waitFor } from "./_helpers.ts";

const LEAKS = [
  "thread",
  "runtime_patch",
  "builtins_patch",
  "environ",
  "alarm",
  "signal_handler",
  "profile",
  "trace",
  "meta_path",
  "path_hooks",
  "app_handler",
  "factory_settings",
  "addon",
  "registered_class",
  "rna_property",
  "preferences",
  "recursion_limit",
  "fds",
  "module",
  "stdout_replaced",
  "fd_closed",
  // Issue 20: process-wide settings one call changes and no Blender reset puts back.
  "putenv",
  "umask",
  "gc_disabled",
  "excepthook",
  "threading_excepthook",
  "warnings_filter",
  "socket_timeout",
  "switch_interval",
  "rlimit_nofile",
  "nice",
  "object_attribute",
  "tzset",
  "int_max_str_digits",
  "signal_mask",
] as const;

/** Leaks a pool worker must retire for: what cannot be undone from inside the process. */
const RETIRES = new Set([
  "thread",
  "runtime_patch",
  "addon",
  "registered_class",
  "rna_property",
  "preferences",
  "fds",
  "fd_closed",
]);

type Seen = { seen: Record<string, unknown>; pid: number };

/** A worker or zygote started in one step serves the next: it is the test's, closed at its end. */
const step = { sanitizeOps: false, sanitizeResources: false };

for (const mode of ["pool", "fork"] as const) {
  // One manager for every leak, as a long-lived service would be: each leak's job A runs on the slot the previous
  // job B left, and its job B must see what the first job of a fresh slot saw. A leak that is not undone reaches B
  // (and every job after it): the step of the leak that made it fails.
  Deno.test(`${mode}: no job's leftover state reaches the next job on the same slot`, async (t) => {
    await using manager = new JobManager({ mode, maxWorkers: 1, timeout: 60_000 });
    const run = (leak: string | null, markFile: string) =>
      manager.addJob({ script: fixture("leak.py"), passedData: { leak, mark_file: markFile } }).result();
    const fresh = (await run(null, join(manager.workRoot, "handler-ran"))).pythonData as Seen;
    let slot = fresh.pid; // The pool worker (or, in fork mode, the last child) that ran the latest job.
    for (const leak of LEAKS) {
      await t.step({
        name: `job A's ${leak} does not reach job B on the same slot`,
        fn: async () => {
          const markFile = join(manager.workRoot, `handler-ran-${leak}`);
          const a = await run(leak, markFile).then((result) => result, (error: JobDroppedError) => error);
          const b = (await run(null, markFile)).pythonData as Seen;
          deepStrictEqual(b.seen, fresh.seen, `${leak} reached job B`);
          if (mode === "pool" && b.pid !== slot) {
            const log = a instanceof JobDroppedError ? a.stderrTail : a.stderr;
            ok(log.includes("is retired after this job"), `the worker was replaced without a word: ${log}`);
          }
          if (mode === "pool" && RETIRES.has(leak)) ok(b.pid !== slot, `a worker with ${leak} was reused`);
          if (!(a instanceof JobDroppedError)) deepStrictEqual(a.pythonData.leaked, leak);
          slot = b.pid;
        },
        ...step,
      });
    }
  });
}

for (const leak of ["stdout_replaced", "fd_closed"] as const) {
  Deno.test(`process: a job with ${leak} ends normally, not by a timeout`, async () => {
    await using manager = new JobManager({ mode: "process", maxWorkers: 1, timeout: 60_000 });
    const markFile = join(manager.workRoot, "handler-ran");
    const result = await manager.addJob({ script: fixture("leak.py"), passedData: { leak, mark_file: markFile } })
      .result();
    deepStrictEqual(result.pythonData.leaked, leak);
  });
}

for (const mode of ["process", "pool", "fork"] as const) {
  Deno.test(`${mode}: another job finds no job's passed data or result in the job folders`, async () => {
    await using manager = new JobManager({ mode, maxWorkers: 2 });
    const jobsRoot = join(manager.workRoot, "jobs");
    const pidFile = join(manager.workRoot, "running.pid");
    const snoop = async () =>
      (await manager.addJob({ script: fixture("snoop.py"), passedData: { jobs_root: jobsRoot } }).result())
        .pythonData.found;
    // While a job with a secret in its passed data runs: its spec.json is gone once its script starts.
    const running = manager.addJob({
      script: fixture("sleep.py"),
      passedData: { pid_file: pidFile, seconds: 60, secret: "the-secret" },
    });
    await waitFor(() => existsSync(pidFile), 60_000, "the job with the secret to run");
    deepStrictEqual(await snoop(), [], "a running job's passed data could be read");
    await running.kill();
    // After a job whose result holds the secret: result.json is gone once the host has read it.
    await manager.addJob({ script: fixture("echo.py"), passedData: { secret: "the-secret" } }).result();
    deepStrictEqual(await snoop(), [], "a finished job's result could be read");
  });
}
