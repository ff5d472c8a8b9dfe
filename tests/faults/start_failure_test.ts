/** A Blender that cannot start trips the restart intensity: jobs fail fast, health says why, nothing loops. */

import { deepStrictEqual, equal, match, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { findBlender, JobDroppedError, JobManager, WorkRootError } from "../../mod.ts";
import { fixture, MODES } from "../_helpers.ts";

async function withExecutable<T>(text: string, use: (path: string, dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "blender");
    await Deno.writeTextFile(path, text);
    await Deno.chmod(path, 0o755);
    return await use(path, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function outcomes(manager: JobManager, count: number): Promise<JobDroppedError[]> {
  const jobs = Array.from({ length: count }, () => manager.addJob({ script: fixture("echo.py") }));
  return await Promise.all(jobs.map((job) => job.result().then(() => undefined, (error) => error))) as never;
}

for (const mode of MODES) {
  Deno.test(`${mode}: a Blender that exits at once (stand-in) trips the intensity limit: the rest fail fast`, async () => {
    await withExecutable("#!/bin/sh\necho 'broken blender' >&2\nexit 1\n", async (blender, dir) => {
      const counter = join(dir, "starts");
      await Deno.writeTextFile(blender, `#!/bin/sh\necho x >> '${counter}'\necho 'broken blender' >&2\nexit 1\n`);
      await using manager = new JobManager({
        mode,
        blender,
        maxWorkers: 1,
        maxAttempts: 3,
        retry: { delayMs: 0 },
        restartIntensity: { maxFailures: 2, periodMs: 60_000 },
      });
      const errors = await outcomes(manager, 6);
      ok(errors.every((error) => error instanceof JobDroppedError));
      const starts = (await Deno.readTextFile(counter)).trim().split("\n").length;
      equal(starts, 3, "Blender was started more often than the limit allows");
      if (mode === "process") {
        // Blender ran the job's command line: its exit is the job's crash.
        equal(errors[0]?.reason, "crashed");
        match(errors[0]?.stderrTail ?? "", /broken blender/);
      } else {
        // The warm Blender exited before it was ready: the job never started, and the report has Blender's words.
        equal(errors[0]?.reason, "start-failed");
        match(errors[0]?.report ?? "", /exited \(code 1\) before it was ready; its last output:\n.*broken blender/);
      }
      for (const error of errors.slice(1)) {
        equal(error.reason, "start-failed");
        match(error.message, /keeps failing at start-up/);
      }
      const health = manager.health;
      equal(health.status, "failing");
      if (health.status === "failing") match(health.reason, /exited (with code 1|\(code 1\) before it was ready)/);
      const late = await outcomes(manager, 1);
      equal(late[0]?.reason, "start-failed", "a job added while failing must fail at once");
      equal(late[0]?.attempts, 0);
    });
  });
}

const PERIOD_MS = 15_000;

for (const mode of MODES) {
  Deno.test(`${mode}: a real Blender that dies at start-up (no Python home) trips the limit, and the manager recovers`, async () => {
    const real = findBlender();
    const dir = await Deno.makeTempDir();
    const broken = join(dir, "broken");
    await Deno.writeTextFile(broken, "");
    // Blender 4.x and later ignore PYTHONHOME unless --python-use-system-env comes first; 3.4 reads it either way.
    const script =
      `#!/bin/sh\nif [ -e '${broken}' ]; then export PYTHONHOME=/nonexistent; set -- --python-use-system-env "$@"; fi\nexec '${real}' "$@"\n`;
    try {
      await withExecutable(script, async (blender) => {
        await using manager = new JobManager({
          mode,
          blender,
          maxWorkers: 1,
          // Two failed starts must fall within the period: 1.5 s was too short for two Blender start-ups on 2 cores
          // shared by parallel test files.
          restartIntensity: { maxFailures: 1, periodMs: PERIOD_MS },
        });
        const errors = await outcomes(manager, 4);
        // In process mode Blender ran the job's command line, so its death is the job's crash; a warm Blender that dies
        // before it is ready never ran the job.
        const first = mode === "process" ? "crashed" : "start-failed";
        deepStrictEqual(errors.map((error) => error.reason), [first, first, "start-failed", "start-failed"]);
        equal(manager.health.status, "failing");
        await Deno.remove(broken); // Blender is mended...
        await new Promise((resolve) => setTimeout(resolve, PERIOD_MS + 100)); // ...and the period passes.
        equal((await manager.addJob({ script: fixture("echo.py") }).result()).attempts, 1);
        equal(manager.health.status, "ok");
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("an unusable work root is a WorkRootError; a job directory that cannot be made drops only that job", async () => {
  throws(() => new JobManager({ workDir: "/no/such/folder" }), WorkRootError);
  throws(() => new JobManager({ workDir: fixture("echo.py") }), WorkRootError);
  await using manager = new JobManager();
  await Deno.writeTextFile(join(manager.workRoot, "jobs"), "a file where the jobs folder should be");
  const error = await manager.addJob({ script: fixture("echo.py") }).result().then(() => undefined, (e) => e);
  ok(error instanceof JobDroppedError);
  equal(error.reason, "start-failed");
  match(error.summary, /could not be started/);
  await Deno.remove(join(manager.workRoot, "jobs"));
  equal((await manager.addJob({ script: fixture("echo.py") }).result()).attempts, 1);
});
