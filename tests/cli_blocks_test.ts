/** `bgproc run --blocks`: data blocks passed from a terminal, and the blocks a job returns are never dropped silently. */

import { deepStrictEqual, equal, match } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { bgproc, bgprocIn } from "./_cli.ts";
import { fixture } from "./_helpers.ts";

const PASS_BACK = `import bpy
python_data = {"passed": sorted(b.name for b in passed_data_blocks)}
data_blocks = [b for b in passed_data_blocks if isinstance(b, bpy.types.Object)]
`;

Deno.test("cli run --blocks FILE:objects=A,B passes data blocks; returned blocks are kept with --output or said lost", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "pass_back.py"), PASS_BACK);
    const made = await bgproc("run", fixture("make_scene.py"), "--path", `out=${join(dir, "scene.blend")}`);
    equal(made.code, 0, made.stderr);
    // Relative paths are the caller's, as for every other flag.
    const lost = await bgprocIn({ cwd: dir }, "run", "pass_back.py", "--blocks", "scene.blend:objects=Alpha,Beta");
    equal(lost.code, 0, lost.stderr);
    deepStrictEqual(JSON.parse(lost.stdout).passed, ["Alpha", "AlphaMesh", "Beta", "BetaMesh", "Red"]);
    match(
      lost.stderr,
      /bgproc: the job returned 2 data blocks \(objects: Alpha, Beta\), not kept: name a folder with --output DIR/,
    );

    const out = join(dir, "out");
    const kept = await bgprocIn(
      { cwd: dir },
      "run",
      "pass_back.py",
      "--blocks",
      "scene.blend:objects=Alpha",
      "--blocks",
      "scene.blend:materials=Red",
      "--output",
      "out",
    );
    equal(kept.code, 0, kept.stderr);
    deepStrictEqual(JSON.parse(kept.stdout).passed, ["Alpha", "AlphaMesh", "Red"]);
    match(kept.stderr, new RegExp(`wrote ${join(out, "data_blocks.blend")}: 1 data block \\(objects: Alpha\\)`));
    equal(existsSync(join(out, "data_blocks.blend")), true);

    for (
      const [blocks, message] of [
        ["scene.blend:objects=Gamma", /has no objects named "Gamma" \(it has: "Alpha", "Beta"\)/],
        ["scene.blend:objcts=Alpha", /'objcts' is not a data-block collection; did you mean 'objects'\?/],
        ["scene.blend", /--blocks takes FILE:COLLECTION=NAME\[,NAME\.\.\.\]/],
        ["missing.blend:objects=A", /--blocks from .*missing\.blend does not exist/],
      ] as const
    ) {
      const bad = await bgprocIn({ cwd: dir }, "run", "pass_back.py", "--blocks", blocks);
      equal(bad.code, 2, bad.stderr);
      match(bad.stderr, message);
    }
    const two = await bgprocIn(
      { cwd: dir },
      "run",
      "pass_back.py",
      "--blocks",
      "scene.blend:objects=Alpha",
      "--blocks",
      "other.blend:objects=Beta",
    );
    match(two.stderr, /a job takes its blocks from one \.blend file, not from scene\.blend and other\.blend/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
