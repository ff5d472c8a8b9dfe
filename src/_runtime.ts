/**
 * Putting the Python runtime where Blender can run it: the manager's work
 * root. The sources are text imports, so they travel with the module graph
 * (from JSR or any URL, where `import.meta.url` is not a file path).
 */

import { join } from "node:path";
import init from "../python/bgproc/__init__.py" with { type: "text" };
import main from "../python/bgproc/__main__.py" with { type: "text" };
import addons from "../python/bgproc/_addons.py" with { type: "text" };
import compat from "../python/bgproc/_compat.py" with { type: "text" };
import context from "../python/bgproc/_context.py" with { type: "text" };
import dataBlocks from "../python/bgproc/_data_blocks.py" with { type: "text" };
import files from "../python/bgproc/_files.py" with { type: "text" };
import gpu from "../python/bgproc/_gpu.py" with { type: "text" };
import jail from "../python/bgproc/_jail.py" with { type: "text" };
import jobDir from "../python/bgproc/_job_dir.py" with { type: "text" };
import libc from "../python/bgproc/_libc.py" with { type: "text" };
import phases from "../python/bgproc/_phases.py" with { type: "text" };
import pool from "../python/bgproc/_pool.py" with { type: "text" };
import progress from "../python/bgproc/_progress.py" with { type: "text" };
import renderProgress from "../python/bgproc/_render_progress.py" with { type: "text" };
import reaper from "../python/bgproc/_reaper.py" with { type: "text" };
import remap from "../python/bgproc/_remap.py" with { type: "text" };
import runner from "../python/bgproc/_runner.py" with { type: "text" };
import workerState from "../python/bgproc/_worker_state.py" with { type: "text" };
import zygote from "../python/bgproc/_zygote.py" with { type: "text" };
import appendJob from "../python/bgproc/jobs/append_job.py" with { type: "text" };
import depsJob from "../python/bgproc/jobs/deps_job.py" with { type: "text" };
import devicesJob from "../python/bgproc/jobs/devices_job.py" with { type: "text" };
import renderChunk from "../python/bgproc/jobs/render_chunk.py" with { type: "text" };
import renderVideo from "../python/bgproc/jobs/render_video.py" with { type: "text" };

/** The bgproc Python package, file name (`jobs/` for bgproc's own job scripts) to source (tests/python_sources_test.ts checks it is complete). */
export const PYTHON_SOURCES: Readonly<Record<string, string>> = {
  "__init__.py": init,
  "__main__.py": main,
  "_addons.py": addons,
  "_compat.py": compat,
  "_context.py": context,
  "_data_blocks.py": dataBlocks,
  "_files.py": files,
  "_gpu.py": gpu,
  "_jail.py": jail,
  "_job_dir.py": jobDir,
  "_libc.py": libc,
  "_phases.py": phases,
  "_pool.py": pool,
  "_progress.py": progress,
  "_render_progress.py": renderProgress,
  "_reaper.py": reaper,
  "_remap.py": remap,
  "_runner.py": runner,
  "_worker_state.py": workerState,
  "_zygote.py": zygote,
  "jobs/append_job.py": appendJob,
  "jobs/deps_job.py": depsJob,
  "jobs/devices_job.py": devicesJob,
  "jobs/render_chunk.py": renderChunk,
  "jobs/render_video.py": renderVideo,
};

/** Write the `bgproc` package under `root` and return the path of its entry script. */
export function materializeRuntime(root: string): string {
  const dir = join(root, "runtime", "bgproc");
  Deno.mkdirSync(join(dir, "jobs"), { recursive: true });
  Deno.mkdirSync(join(root, "pool"), { recursive: true });
  for (const [name, source] of Object.entries(PYTHON_SOURCES)) {
    Deno.writeTextFileSync(join(dir, name), source);
  }
  return join(dir, "__main__.py");
}
