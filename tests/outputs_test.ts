/** Outputs: what a job writes next to its .blend file (Blender's `//`) and what Blender says it saved is kept. */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobManager } from "../mod.ts";
import { fixture, waitFor } from "./_helpers.ts";

async function renderScene(dir: string): Promise<string> {
  const path = join(dir, "shot.blend");
  await using manager = new JobManager();
  await manager.addJob({ script: fixture("make_render_scene.py"), passedData: { path } }).result();
  return path;
}

for (const mode of ["process", "pool", "fork"] as const) {
  Deno.test(`${mode} mode: '//renders/' frames and other files a job writes arrive in result.outputs`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const blendFile = await renderScene(dir);
      const elsewhere = join(dir, "still.png");
      await using manager = new JobManager({ mode });
      const job = manager.addJob({ script: fixture("render_own_path.py"), blendFile, passedData: { elsewhere } });
      const { outputs } = await job.result();
      const folder = outputs.find((output) => output.path.endsWith("frame_0001.png"))!.path.split("/renders/")[0]!;
      ok(folder.startsWith(manager.workRoot), `kept in the work root: ${folder}`);
      deepStrictEqual(
        outputs.map(({ path, kind }) => [path.startsWith(folder) ? path.slice(folder.length) : path, kind]),
        [
          ["/notes/readme.txt", "other"],
          ["/renders/frame_0001.png", "image"],
          ["/renders/frame_0002.png", "image"],
          ["/renders/frame_0003.png", "image"],
          [elsewhere, "image"], // Saved outside the job folder: listed where it is.
        ],
      );
      for (const output of outputs) equal((await Deno.stat(output.path)).size, output.bytes);
      manager.removeJob(job.name);
      await waitFor(() => !existsSync(folder)); // Removed with the job (by the Results actor, just after).
      ok(existsSync(elsewhere), "a file outside the job folder is the user's");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("outputDir (per job, or the manager's) receives the outputs with their relative paths", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const blendFile = await renderScene(dir);
    const elsewhere = join(dir, "still.png");
    const managerOut = join(dir, "all");
    await using manager = new JobManager({ outputDir: managerOut });
    const own = join(dir, "own", "nested");
    const first = await manager.addJob({
      script: fixture("render_own_path.py"),
      blendFile,
      passedData: { elsewhere },
      outputDir: own,
    }).result();
    ok(first.outputs.some((output) => output.path === join(own, "renders", "frame_0002.png")));
    ok(existsSync(join(own, "notes", "readme.txt")));
    const second = await manager.addJob({ script: fixture("render_own_path.py"), blendFile, passedData: { elsewhere } })
      .result();
    ok(second.outputs.some((output) => output.path === join(managerOut, "renders", "frame_0003.png")));
    manager.removeJob(second.name);
    await manager.addJob({ script: fixture("echo.py") }).result(); // The Results actor has handled the removal.
    ok(existsSync(join(managerOut, "renders", "frame_0003.png")), "a folder the user named is never removed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a retried job's outputs are its successful attempt's only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const blendFile = await renderScene(dir);
    await using manager = new JobManager({ maxAttempts: 2, retry: { delayMs: 0 } });
    const result = await manager.addJob({
      script: fixture("fail_once_writing.py"),
      blendFile,
      passedData: { marker: join(dir, "marker") },
      outputDir: join(dir, "out"),
    }).result();
    equal(result.attempts, 2);
    deepStrictEqual(result.outputs.map((output) => output.path), [join(dir, "out", "attempt_2.txt")]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a job that writes nothing has no outputs; outputDir is checked", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using manager = new JobManager();
    deepStrictEqual((await manager.addJob({ script: fixture("echo.py") }).result()).outputs, []);
    const file = join(dir, "a_file");
    await Deno.writeTextFile(file, "");
    let error: unknown;
    try {
      manager.addJob({ script: fixture("echo.py"), outputDir: file });
    } catch (caught) {
      error = caught;
    }
    ok(String(error).includes("is not a folder"), String(error));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
