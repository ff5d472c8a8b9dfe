// deno-lint-ignore-file no-console
/**
 * Data blocks both ways: a job makes a scene, a second job receives its cube, builds a brick wall and hands
 * it back (with the mesh and material it uses), the wall is appended into a copy of the scene with
 * `overwrite: true`, twice, and Deno reads the target without Blender: no `.001` copies.
 *
 * Run with `deno task example:data-blocks`.
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { JobManager, readBlendFile } from "../mod.ts";

const script = (name: string) => fileURLToPath(new URL(`./scripts/${name}`, import.meta.url));

await using manager = new JobManager();
const scene = join(manager.workRoot, "scene.blend");
await manager.addJob({ script: script("make_scene.py"), passedData: { out: scene } }).result();
console.log(
  `scene.blend holds: ${(await readBlendFile(scene)).ids.filter((id) => id.code === "OB").map((id) => id.name)}`,
);

const bricks = await manager.addJob({
  script: script("make_bricks.py"),
  passedDataBlocks: { from: scene, objects: ["Cube"] },
  passedData: { columns: 8, rows: 5 },
}).result();
const { path: _, ...collections } = bricks.dataBlocks!;
for (const [collection, blocks] of Object.entries(collections)) {
  for (const block of blocks) {
    console.log(`the job handed back ${collection}: ${block.name}${block.returned ? " (returned by the script)" : ""}`);
  }
}
console.log(`python_data: ${JSON.stringify(bricks.pythonData)}`);

const target = join(manager.workRoot, "target.blend");
await Deno.copyFile(scene, target);
for (const round of ["once", "twice"]) {
  // overwrite: the target's blocks named as the library's (its Cube mesh and Red material too) are replaced.
  const { names } = await manager.appendDataBlocks(bricks.dataBlocks!, { into: target, overwrite: true });
  const info = await readBlendFile(target);
  console.log(`appended ${round} into target.blend as ${JSON.stringify(names)}; Blender ${info.version} file holds:`);
  for (const id of info.ids.filter((id) => ["OB", "ME", "MA"].includes(id.code))) {
    console.log(`  ${id.collection}: ${id.name}`);
  }
}
