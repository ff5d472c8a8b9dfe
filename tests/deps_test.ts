/**
 * `manager.dependencies()` and `bgproc deps` on a shot Blender builds: every kind of file a .blend can use is found
 * by Blender itself (a library's own texture resolved from the library's folder, sequences and UDIM tiles file by
 * file, the script's helper module), and a missing file is said.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { InvalidJobError, JobManager } from "../mod.ts";
import { fixture } from "./_helpers.ts";
import { bgproc } from "./_cli.ts";
import { makeShot } from "./_shot.ts";
import { DependencyCache } from "../src/deps/cache.ts";

Deno.test("dependencies: libraries, images (a sequence, UDIM tiles, an absolute path), a sound, a text, the script's module, and what is missing", async () => {
  await using manager = new JobManager({ mode: "process" });
  const shot = await makeShot(manager);
  try {
    const deps = await manager.dependencies(shot.blend, { script: shot.script });
    const listed = deps.files.map((file) => [file.kind, file.path.slice(shot.root.length + 1), file.exists]);
    assert.deepEqual(
      new Set(listed.map((entry) => JSON.stringify(entry))),
      new Set([
        ["library", "shot/lib/props.blend", true],
        ["image", "shot/lib/tex/wood.png", true], // The library's texture, relative to the library.
        ["image", "shot/textures/grass.png", true],
        ["image", "elsewhere/sky.png", true],
        ["image", "shot/seq/frame_0001.png", true],
        ["image", "shot/seq/frame_0002.png", true],
        ["image", "shot/seq/frame_0003.png", true],
        ["image", "shot/udim/paint.1001.png", true],
        ["image", "shot/udim/paint.1002.png", true],
        ["image", "shot/textures/missing.png", false],
        ["sound", "shot/audio/hum.wav", true],
        ["text", "shot/scripts/notes.py", true],
        ["module", "shot/helper.py", true],
      ].map((entry) => JSON.stringify(entry))),
    );
    assert.equal(deps.blendFile, shot.blend);
    assert.deepEqual(deps.missing.map((file) => file.written), ["//textures/missing.png"]);
    const wood = deps.files.find((file) => file.path.endsWith("wood.png"))!;
    assert.equal(wood.written, "//tex/wood.png");
    assert.equal(deps.bytes, deps.files.reduce((sum, file) => sum + file.size, 0));
    assert.equal(wood.size, (await Deno.stat(wood.path)).size);
    assert.ok(deps.folders.includes(join(shot.root, "shot/seq")), JSON.stringify(deps.folders));
    assert.ok(deps.folders.includes(join(shot.root, "shot/udim")));

    // A host's kept listing notices a file added where sequences are searched (a new frame), not only changed files.
    const cache = new DependencyCache({});
    const before = await cache.of(shot.blend, null);
    assert.equal(await cache.of(shot.blend, null), before, "kept while nothing changed");
    await Deno.copyFile(join(shot.root, "shot/seq/frame_0003.png"), join(shot.root, "shot/seq/frame_0004.png"));
    const after = await cache.of(shot.blend, null);
    assert.ok(after.files.some((file) => file.path.endsWith("frame_0004.png")), "the new frame is listed");
    await Deno.remove(join(shot.root, "shot/seq/frame_0004.png"));
    // Nothing of the job's is left in the manager's list.
    assert.deepEqual(manager.getJobNames().filter((name) => name.startsWith("deps")), []);

    // The command line: a table, a count, exit 1 for the missing file; --json the same list.
    const table = await bgproc("deps", shot.blend, "--script", shot.script);
    assert.equal(table.code, 1, table.stderr);
    assert.match(table.stdout, /^KIND +SIZE +PATH$/m);
    assert.match(table.stdout, /^image +missing +\S+missing\.png$/m);
    assert.match(table.stdout, /^13 files, [\d.]+ KiB, 1 missing$/m);
    const json = await bgproc("deps", shot.blend, "--json");
    assert.equal(JSON.parse(json.stdout).files.length, 12, "without --script, no module");
  } finally {
    await Deno.remove(shot.root, { recursive: true });
  }
});

Deno.test("dependencies of what is not a .blend file is an InvalidJobError, and nothing runs", async () => {
  await using manager = new JobManager({ mode: "process" });
  await assert.rejects(manager.dependencies(join(Deno.cwd(), "nowhere.blend")), InvalidJobError);
  await assert.rejects(manager.dependencies(fixture("echo.py")), InvalidJobError);
  assert.deepEqual(manager.getJobNames(), []);
});
