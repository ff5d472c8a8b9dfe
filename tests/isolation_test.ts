/**
 * Isolation: job A leaves one kind of process state behind, then job B runs
 * on the same slot and must see what a first job sees. In fork mode no leak
 * can reach B (A's child is gone). In pool mode each leak is undone, or the
 * worker is retired before B and A's log says why.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { JobDroppedError, JobManager } from "../mod.ts";
import { fixture } from "./_helpers.ts";

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

for (const mode of ["pool", "fork"] as const) {
  for (const leak of LEAKS) {
    Deno.test(`${mode}: job A's ${leak} does not reach job B on the same slot`, async () => {
      await using manager = new JobManager({ mode, maxWorkers: 1, timeout: 60_000 });
      const markFile = join(manager.workRoot, "handler-ran");
      const run = (leak: string | null) =>
        manager.addJob({ script: fixture("leak.py"), passedData: { leak, mark_file: markFile } }).result();
      const first = (await run(null)).pythonData as Seen;
      const a = await run(leak).then((result) => result, (error: JobDroppedError) => error);
      const b = (await run(null)).pythonData as Seen;
      deepStrictEqual(b.seen, first.seen, `${leak} reached job B`);
      if (mode === "pool" && b.pid !== first.pid) {
        const log = a instanceof JobDroppedError ? a.stderrTail : a.stderr;
        ok(log.includes("is retired after this job"), `the worker was replaced without a word: ${log}`);
      }
      if (mode === "pool" && RETIRES.has(leak)) ok(b.pid !== first.pid, `a worker with ${leak} was reused`);
      if (!(a instanceof JobDroppedError)) deepStrictEqual(a.pythonData.leaked, leak);
    });
  }
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
