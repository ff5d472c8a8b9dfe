/** Outputs: what a job writes next to its .blend file (Blender's `//`) and what Blender says it saved is kept. */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobDroppedError, JobManager } from "../mod.ts";
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
          // Not `elsewhere`, nor /etc/hostname (a `Saved:` line the script printed itself): a saved file outside the
          // folder the outputs go to is never listed, since a job can name any file that way.
        ],
      );
      ok(existsSync(elsewhere), "Blender did not save the still");
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
      passedData: { elsewhere: join(own, "still.png") },
      outputDir: own,
    }).result();
    ok(first.outputs.some((output) => output.path === join(own, "renders", "frame_0002.png")));
    // Saved straight into the job's outputDir (as render chunks do): listed where it is.
    ok(first.outputs.some((output) => output.path === join(own, "still.png")), "a still saved into outputDir");
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

for (const mode of ["process", "pool", "fork"] as const) {
  Deno.test(`${mode} mode: a job that swaps its folder for a link gets nothing moved from there or written there`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const blendFile = await renderScene(dir);
      const victim = join(dir, "victim");
      await Deno.mkdir(victim);
      await Deno.writeTextFile(join(victim, "private.txt"), "mine");
      const out = join(dir, "out");
      await Deno.mkdir(out);
      // Two attempts: the second one's folder is made again in place of the link (the link goes, never its target).
      await using manager = new JobManager({ mode, outputDir: out, maxAttempts: 2, retry: { delayMs: 0 } });
      const job = manager.addJob({
        script: fixture("tamper_outputs.py"),
        blendFile,
        passedData: { how: "swap", victim },
      });
      const error = await job.result().then(() => null, (error: JobDroppedError) => error);
      ok(error instanceof JobDroppedError, "the job completed");
      equal(error.reason, "crashed");
      match(error.message, /replaced its folder .* with a symbolic link; nothing in it was read or kept/);
      deepStrictEqual(await names(victim), ["private.txt"], "bgproc wrote into, or moved from, the link's target");
      deepStrictEqual(await names(out), []);
      equal(error.attempts, 2);
      equal(await Deno.readTextFile(join(victim, "private.txt")), "mine");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`${mode} mode: odd outputs are kept or left with a note: a name not UTF-8, a hard link out, 40 folders deep`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const blendFile = await renderScene(dir);
      const outside = join(dir, "outside.txt");
      await Deno.writeTextFile(outside, "outside");
      const out = join(dir, "out");
      await Deno.mkdir(out);
      await using manager = new JobManager({ mode });
      const result = await manager.addJob({
        script: fixture("tamper_outputs.py"),
        blendFile,
        outputDir: out,
        passedData: { how: "odd", outside },
      }).result();
      deepStrictEqual(result.outputs.map((output) => output.path).sort(), [
        join(out, "bad\\xff\\xfename.png"), // Renamed by the runtime, which says so.
        join(out, "good.png"),
        join(out, "linked.txt"),
      ]);
      match(result.stderr, /has a name that is not UTF-8; it was renamed 'bad\\\\xff\\\\xfename.png'/);
      match(result.stderr, /"d\/d\/.*" is more than 32 folders deep; nothing in it was kept/);
      // The hard link was copied: the file outside keeps its inode, its content and its one name.
      const [kept, original] = [await Deno.stat(join(out, "linked.txt")), await Deno.stat(outside)];
      ok(kept.ino !== original.ino, "a hard link to a file outside was moved as the same inode");
      equal(original.nlink, 1);
      equal(await Deno.readTextFile(outside), "outside");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a file/folder clash in a shared outputDir moves none of the job's files there; they are kept apart", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const blendFile = await renderScene(dir);
    const out = join(dir, "out");
    await Deno.mkdir(out);
    await using manager = new JobManager({ mode: "fork", outputDir: out });
    const run = (paths: string[]) =>
      manager.addJob({ script: fixture("tamper_outputs.py"), blendFile, passedData: { how: "file", paths } }).result();
    await run(["renders", "a.png"]); // A file named `renders`.
    const b = await run(["b.png", "renders/frame_0001.png"]);
    deepStrictEqual(await names(out), ["a.png", "renders"], "a half-moved job: some of B's files reached outputDir");
    ok((await Deno.stat(join(out, "renders"))).isFile);
    equal(b.outputs.length, 2);
    for (const output of b.outputs) ok(output.path.startsWith(manager.workRoot), `${output.path} is not kept apart`);
    match(b.stderr, /renders is a file, where the job's renders\/frame_0001\.png needs a folder; .* none in /);
    // A folder where a file goes is the same clash; same-named files are still replaced.
    await run(["sub/x.png"]);
    match((await run(["sub"])).stderr, /out\/sub is a folder, where the job wrote a file/);
    deepStrictEqual(await names(join(out, "sub")), ["x.png"]);
    const again = await run(["a.png"]);
    deepStrictEqual(again.outputs.map((output) => output.path), [join(out, "a.png")]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The names in a folder, sorted. */
async function names(folder: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(folder))).map((entry) => entry.name).sort();
}
