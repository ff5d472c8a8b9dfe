/** Progress from Blender's own rendering (the `progress` option), in every mode, on every Blender. */

import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { InvalidJobError, JobManager, type ProgressSource } from "../mod.ts";
import { fixture } from "./_helpers.ts";

async function progressOf(
  manager: JobManager,
  options: { progress?: ProgressSource; report?: number; out: string; percent?: number },
): Promise<{ values: number[]; pid: number }> {
  const { out, report, progress, percent } = options;
  const job = manager.addJob({
    script: fixture("render_animation.py"),
    passedData: {
      out,
      frames: 6,
      ...(report === undefined ? {} : { report }),
      ...(percent === undefined ? {} : { percent }),
    },
    ...(progress === undefined ? {} : { progress }),
  });
  const values: number[] = [];
  for await (const value of job.progressUpdates()) values.push(value);
  const { pythonData } = await job.result();
  return { values, pid: pythonData.pid as number };
}

for (const mode of ["process", "pool", "fork"] as const) {
  Deno.test(`${mode} mode: a script that only renders shows the render's progress; 'script' and an own report win`, async () => {
    const out = await Deno.makeTempDir();
    try {
      await using manager = new JobManager({ mode, maxWorkers: 1 });
      // Six frames of about 0.1 s each (tens of ms at the fixture's 32 x 18: a host starved by a busy machine then saw
      // only the first and the last): the host, polling every few ms, sees several steps.
      const auto = await progressOf(manager, { out, percent: 400 });
      const between = auto.values.filter((value) => value > 0 && value < 1);
      ok(between.length >= 2, `render progress in steps, saw ${JSON.stringify(auto.values)}`);
      deepStrictEqual([...auto.values].sort((a, b) => a - b), auto.values, "never goes down");
      equal(auto.values.at(-1), 1);
      equal([...Deno.readDirSync(out)].length, 6);

      const script = await progressOf(manager, { out, progress: "script" });
      deepStrictEqual(script.values.filter((value) => value > 0 && value < 1), [], "'script' ignores renders");

      const reported = await progressOf(manager, { out, report: 0.5 });
      deepStrictEqual(reported.values.filter((value) => value > 0 && value < 1), [0.5], "the script's report wins");

      if (mode === "pool") equal(new Set([auto.pid, script.pid, reported.pid]).size, 1, "the handlers leave no trace");
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  });
}

Deno.test("a still of a scene with a long frame range counts as one frame, not as 1/250 of an animation", async () => {
  const out = await Deno.makeTempDir();
  try {
    await using manager = new JobManager();
    const job = manager.addJob({
      script: new URL("../examples/scripts/render_frame.py", import.meta.url).pathname,
      passedData: { frame: 1, out, samples: 16 }, // The default scene's range is 1-250.
    });
    const values: number[] = [];
    for await (const value of job.progressUpdates()) values.push(value);
    await job.result();
    deepStrictEqual(values.filter((value) => value > 0 && value < 0.01), [], JSON.stringify(values));
    equal(values.at(-1), 1);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("the progress option is checked", async () => {
  throws(() => new JobManager({ progress: "frames" as never }), RangeError);
  await using manager = new JobManager();
  throws(() => manager.addJob({ script: fixture("echo.py"), progress: 1 as never }), InvalidJobError);
});
