/** Nothing a job puts in its directory, or a log file it is given, can hang, bloat or outlive the host. */

import { deepStrictEqual, equal, match, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { InvalidJobError, JobDroppedError, JobManager } from "../mod.ts";
import { fixture } from "./_helpers.ts";

for (const kind of ["zero", "fifo"]) {
  Deno.test(`a progress file replaced by ${kind === "zero" ? "a link to /dev/zero" : "a FIFO"} is ignored`, async () => {
    await using manager = new JobManager();
    const job = manager.addJob({ script: fixture("hostile_progress.py"), passedData: { kind }, timeout: 20_000 });
    const result = await job.result();
    equal(result.pythonData.kind, kind);
    equal(result.pythonData.still, true, "the fixture did not leave its hostile file in place");
    equal(job.progress, 1);
  });
}

Deno.test("a logFile that is a FIFO nobody reads never blocks: the job runs and the report says why there is no log", async () => {
  await using manager = new JobManager();
  const dir = await Deno.makeTempDir();
  try {
    const fifo = join(dir, "log.fifo");
    await new Deno.Command("mkfifo", { args: [fifo] }).output();
    const job = manager.addJob({ script: fixture("progress.py"), passedData: { steps: 1, pause: 0 }, logFile: fifo });
    const result = await job.result();
    match(result.stderr, /could not write the log file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a python_data over resultLimit is dropped as result-too-large, before it is read", async () => {
  await using manager = new JobManager({ resultLimit: 1024 * 1024 });
  const job = manager.addJob({ script: fixture("big_result.py"), passedData: { mib: 2 } });
  const error = await job.result().then(() => undefined, (e) => e);
  ok(error instanceof JobDroppedError);
  equal(error.reason, "result-too-large");
  match(error.summary, /more than the manager's resultLimit of 1048576/);
});

Deno.test("options are checked before anything is made on disk", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad: Record<string, unknown>[] = [
      { mode: "bogus" },
      { mode: "pool", maxWorkerMemoryMiB: 0 },
      { maxWorkers: 0 },
      { resultLimit: -1 },
      { keepFiles: "yes" },
      { retry: { on: ["killed"] } },
    ];
    for (const options of bad) {
      let thrown: unknown;
      try {
        new JobManager({ ...options, workDir: dir } as never);
      } catch (error) {
        thrown = error;
      }
      ok(thrown instanceof RangeError || thrown instanceof TypeError, `${JSON.stringify(options)} was accepted`);
    }
    equal([...Deno.readDirSync(dir)].length, 0, "a rejected manager left a work root");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("maxWorkers and maxAttempts are settable on a live manager, with validation", async () => {
  await using manager = new JobManager({ maxWorkers: 1 });
  manager.maxWorkers = 2;
  equal(manager.maxWorkers, 2);
  equal(manager.counts.availableWorkers, 2);
  manager.maxAttempts = 3;
  equal(manager.maxAttempts, 3);
  let thrown: unknown;
  try {
    manager.maxWorkers = 0;
  } catch (error) {
    thrown = error;
  }
  ok(thrown instanceof RangeError);
  equal(manager.maxWorkers, 2);
  const jobs = [1, 2].map(() => manager.addJob({ script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } }));
  await Promise.all(jobs.map((job) => job.result()));
});

for (const mode of ["process", "pool", "fork"] as const) {
  Deno.test(`${mode} mode: a .blend file Blender cannot open (a newer Blender's header) drops the job saying so`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      // The 17-byte header Blender 5.0+ writes, claiming 5.2, then no valid blocks: no supported Blender opens it.
      const blendFile = join(dir, "from_the_future.blend");
      const body = new Uint8Array(2000).map((_, i) => (i * 7919) % 251);
      await Deno.writeFile(blendFile, new Uint8Array([...new TextEncoder().encode("BLENDER17-01v0502"), ...body]));
      await using manager = new JobManager({ mode, maxAttempts: 1 });
      const error = await manager.addJob({ script: fixture("echo.py"), blendFile }).result().then(
        () => undefined,
        (error) => error,
      );
      ok(error instanceof JobDroppedError, String(error));
      equal(error.reason, "error");
      match(error.summary, /^Blender could not open the job's \.blend file: .*from_the_future\.blend/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

for (const mode of ["process", "fork", "pool"] as const) {
  Deno.test(`${mode}: inputs are copied into the job's folder (job_folder); the ones it changed or replaced come back as outputs, the others do not`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "bgproc-inputs-" });
    try {
      await Deno.writeTextFile(join(dir, "a.txt"), "alpha");
      await Deno.writeTextFile(join(dir, "b.txt"), "beta");
      await Deno.writeTextFile(join(dir, "c.txt"), "gamma");
      await using manager = new JobManager({ mode });
      const outputDir = join(dir, "out");
      const job = manager.addJob({
        script: fixture("inputs.py"),
        inputs: [join(dir, "a.txt"), join(dir, "b.txt"), join(dir, "c.txt")],
        outputDir,
      });
      const result = await job.result();
      deepStrictEqual(result.pythonData, { a: "alpha", b: "beta", same_folder: true });
      deepStrictEqual(result.outputs.map((output) => output.path).sort(), [
        join(outputDir, "b.txt"),
        join(outputDir, "c.txt"),
        join(outputDir, "out.txt"),
      ]);
      equal(await Deno.readTextFile(join(outputDir, "c.txt")), "replaced");
      equal(await Deno.readTextFile(join(dir, "c.txt")), "gamma", "the job replaced its copy, not the file");
      equal(await Deno.readTextFile(join(outputDir, "b.txt")), "changed");
      equal(await Deno.readTextFile(join(dir, "b.txt")), "beta", "the job changed its copy, not the file");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("inputs are checked: a missing file, two of one name, a name the job's folder keeps", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bgproc-inputs-" });
  try {
    await Deno.mkdir(join(dir, "x"));
    await Deno.writeTextFile(join(dir, "a.txt"), "a");
    await Deno.writeTextFile(join(dir, "x", "a.txt"), "a");
    await Deno.writeTextFile(join(dir, "spec.json"), "{}");
    await using manager = new JobManager();
    const cases: [string[], RegExp][] = [
      [[join(dir, "none.txt")], /does not exist/],
      [[join(dir, "a.txt"), join(dir, "x", "a.txt")], /have the same name/],
      [[join(dir, "spec.json")], /name the job's folder keeps for itself/],
    ];
    for (const [inputs, message] of cases) {
      throws(() => manager.addJob({ script: fixture("echo.py"), inputs }), (error: unknown) => {
        ok(error instanceof InvalidJobError && error.field === "inputs", String(error));
        match(error.message, message);
        return true;
      });
    }
    equal(manager.getJobNames().length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
