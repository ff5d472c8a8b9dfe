/** Blender dying or failing to start is classified, reported, and the manager goes on. */

import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { JobDroppedError, JobManager } from "../../mod.ts";
import { fixture, MODES } from "../_helpers.ts";

async function dropped(manager: JobManager, how: string): Promise<JobDroppedError> {
  const error = await manager.addJob({ script: fixture("crash.py"), passedData: { how } }).result().then(
    () => undefined,
    (error) => error,
  );
  ok(error instanceof JobDroppedError, `expected a JobDroppedError, got ${error}`);
  return error;
}

for (const mode of MODES) {
  Deno.test(`${mode}: os._exit(3) in the script is a crash with exit code 3`, async () => {
    await using manager = new JobManager({ mode });
    const error = await dropped(manager, "exit");
    equal(error.reason, "crashed");
    equal(error.exitCode, 3);
    equal(error.signal, null);
    match(error.report, /exited with code 3/);
    match(error.stdoutTail, /crashing now/);
  });
}

for (const mode of MODES) {
  Deno.test(`${mode}: a segfault is a crash named by its signal, and the next job still runs`, async () => {
    await using manager = new JobManager({ mode });
    const error = await dropped(manager, "segfault");
    equal(error.reason, "crashed");
    equal(error.signal, "SIGSEGV");
    equal(error.exitCode, null);
    const next = manager.addJob({ script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } });
    equal((await next.result()).attempts, 1);
  });
}

for (const mode of MODES) {
  Deno.test(`${mode}: a Blender that cannot be executed is start-failed, with the reason`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const broken = join(dir, "blender");
      await Deno.writeTextFile(broken, "#!/no/such/interpreter\n");
      await Deno.chmod(broken, 0o755);
      await using manager = new JobManager({ mode, blender: broken });
      const error = await manager.addJob({ script: fixture("echo.py") }).result().then(() => undefined, (e) => e);
      ok(error instanceof JobDroppedError);
      equal(error.reason, "start-failed");
      match(error.report, /could not be started/);
      equal(manager.counts.availableWorkers, 2);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
