// deno-lint-ignore-file no-console
/**
 * Data blocks both ways: a job makes a scene, a second job receives its cube, builds a brick wall and hands
 * it back, the wall is appended into a target .blend, and Deno reads the target without Blender.
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
console.log(`the job made ${JSON.stringify(bricks.dataBlocks?.objects)}: ${JSON.stringify(bricks.pythonData)}`);

const target = join(manager.workRoot, "target.blend");
await Deno.copyFile(scene, target);
const { names } = await manager.appendDataBlocks(bricks.dataBlocks!, { into: target });
console.log(`appended into target.blend as ${JSON.stringify(names)}`);

const info = await readBlendFile(target);
console.log(`target.blend (Blender ${info.version}, ${info.compression}) now holds:`);
for (const id of info.ids.filter((id) => ["OB", "ME", "MA"].includes(id.code))) {
  console.log(`  ${id.collection}: ${id.name}`);
}
