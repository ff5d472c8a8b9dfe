// deno-lint-ignore-file no-console
/**
 * Renders frames of a generated scene in parallel jobs (Cycles on the CPU), writing PNG files. The script reports
 * no progress itself: the host reads it from Blender's own render output ("Sample 5/16") through `job.logs()`.
 *
 * Run with `deno task example:render [out-folder]`.
 */

import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Job, JobManager } from "../mod.ts";

const out = resolve(Deno.args[0] ?? "renders");
await Deno.mkdir(out, { recursive: true });
const script = fileURLToPath(new URL("./scripts/render_frame.py", import.meta.url));

/** Progress from Blender's render output, for scripts that do not call update_job_progress. */
async function renderProgress(job: Job, onProgress: (value: number) => void): Promise<void> {
  for await (const { line } of job.logs()) {
    const match = /Sample (\d+)\/(\d+)/.exec(line);
    if (match !== null) onProgress(Number(match[1]) / Number(match[2]));
  }
}

await using manager = new JobManager({ maxWorkers: 2 });
const frames = [1, 2, 3, 4];
const progress = new Map(frames.map((frame) => [frame, 0]));
const show = () =>
  console.log(
    frames.map((frame) => `frame ${frame}: ${(progress.get(frame)! * 100).toFixed(0).padStart(3)} %`).join("  "),
  );
const jobs = frames.map((frame) => manager.addJob({ name: `frame-${frame}`, script, passedData: { frame, out } }));
await Promise.all(jobs.map((job, index) =>
  renderProgress(job, (value) => {
    const frame = frames[index]!;
    if (value - progress.get(frame)! >= 0.25 || value === 1) {
      progress.set(frame, value);
      show();
    }
  })
));
for (const job of jobs) {
  const { pythonData, durationMs } = await job.result();
  console.log(`${job.name}: ${pythonData.file} (${(durationMs / 1000).toFixed(1)} s)`);
}
