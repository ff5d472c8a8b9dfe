// deno-lint-ignore-file no-console
/**
 * Renders frames of a generated scene in parallel jobs (Cycles on the CPU), writing PNG files. The script reports
 * no progress itself: with the `progress` option's default ("auto"), bgproc reports the render's own (its samples
 * on Blender 4.x and 5.x, its frames on 3.4). For frame ranges over many jobs, see `manager.render()`.
 *
 * Run with `deno task example:render [out-folder]`.
 */

import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { JobManager } from "../mod.ts";

const out = resolve(Deno.args[0] ?? "renders");
await Deno.mkdir(out, { recursive: true });
const script = fileURLToPath(new URL("./scripts/render_frame.py", import.meta.url));

await using manager = new JobManager({ maxWorkers: 2 });
const frames = [1, 2, 3, 4];
const progress = new Map(frames.map((frame) => [frame, 0]));
const show = () =>
  console.log(
    frames.map((frame) => `frame ${frame}: ${(progress.get(frame)! * 100).toFixed(0).padStart(3)} %`).join("  "),
  );
const jobs = frames.map((frame) => manager.addJob({ name: `frame-${frame}`, script, passedData: { frame, out } }));
await Promise.all(jobs.map(async (job, index) => {
  const frame = frames[index]!;
  for await (const value of job.progressUpdates()) {
    if (value - progress.get(frame)! >= 0.25 || value === 1) {
      progress.set(frame, value);
      show();
    }
  }
}));
for (const job of jobs) {
  const { pythonData, durationMs } = await job.result();
  console.log(`${job.name}: ${pythonData.file} (${(durationMs / 1000).toFixed(1)} s)`);
}
