/** The shot of tests/fixtures/make_shot.py, for the dependency tests (local and over NATS). */

import type { JobManager } from "../mod.ts";
import { fixture } from "./_helpers.ts";

/** Build the shot under a new temporary folder (with `render`, a scene to render); its .blend, script and root. */
export async function makeShot(manager: JobManager, render = false) {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "bgproc-shot-" }));
  const made = await manager.addJob({ script: fixture("make_shot.py"), passedData: { root, render } }).result();
  return { root, blend: made.pythonData.blend as string, script: made.pythonData.script as string };
}
