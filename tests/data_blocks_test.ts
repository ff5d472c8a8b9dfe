/** Data blocks both ways, appending into .blend files, and reading .blend files from Deno, against real Blender. */

import { deepStrictEqual, equal, match, ok, rejects, throws } from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  DATA_BLOCK_COLLECTIONS,
  findBlender,
  InvalidJobError,
  JobDroppedError,
  JobManager,
  readBlendFile,
} from "../mod.ts";
import { collectionOf } from "../src/blend/ids.ts";
import { fixture, waitFor } from "./_helpers.ts";

async function makeScene(manager: JobManager, name: string, compress = false): Promise<string> {
  const out = join(manager.workRoot, name);
  await manager.addJob({ script: fixture("make_scene.py"), passedData: { out, compress } }).result();
  return out;
}

async function blenderIds(manager: JobManager, blendFile: string) {
  return (await manager.addJob({ script: fixture("list_ids.py"), blendFile }).result()).pythonData as {
    ids: [string, string][];
    locations: Record<string, number>;
    scene_objects: string[];
    version: string;
    object_data: Record<string, string>;
    mesh_materials: Record<string, string[]>;
    material_colors: Record<string, number[]>;
    shape_keys: [string, string, string[]][];
    orphans: string[];
  };
}

Deno.test("an object with its mesh and material round-trips through a job, and jobs chain", async () => {
  await using manager = new JobManager();
  const scene = await makeScene(manager, "scene.blend");
  const first = await manager.addJob({
    script: fixture("make_bricks.py"),
    passedDataBlocks: { from: scene, objects: ["Alpha"], materials: ["Red"] },
  }).result();
  deepStrictEqual(
    first.pythonData.seen,
    [["Object", "Alpha"], ["Material", "Red"], ["Mesh", "AlphaMesh"]],
    "the passed blocks in the order given, then what they brought with them",
  );
  equal(first.pythonData.material, "Red");
  equal(first.pythonData.in_scene, false, "passed blocks are local data, not linked into the scene");
  deepStrictEqual(first.pythonData.objects_before, ["Alpha"], "only the passed blocks arrive");
  equal(first.pythonData.source_blend_file, scene, "the file the passed blocks came from");
  const blocks = first.dataBlocks;
  ok(blocks !== null);
  deepStrictEqual(blocks.objects, [{ name: "Bricks", type: "MESH", returned: true }]);
  deepStrictEqual(blocks.meshes, [{ name: "AlphaMesh", type: "MESH", returned: false }], "what Bricks uses is listed");
  deepStrictEqual(blocks.materials, [{ name: "Red", type: "MATERIAL", returned: false }]);
  deepStrictEqual(await manager.getRetrievedDataBlocks(first.name), blocks);
  const library = await readBlendFile(blocks.path);
  const names = library.ids.map((id) => `${id.collection}:${id.name}`).sort();
  deepStrictEqual(names, ["materials:Red", "meshes:AlphaMesh", "objects:Bricks"], "the manifest lists the library");

  const second = await manager.addJob({ script: fixture("decorate.py"), passedDataBlocks: blocks }).result();
  deepStrictEqual(
    (second.pythonData.names as string[]).slice(0, 1),
    ["Bricks"],
    "the blocks the job returned come first, then what they use",
  );
  deepStrictEqual((second.pythonData.names as string[]).slice(1).sort(), ["AlphaMesh", "Red"]);
  equal(second.pythonData.source_blend_file, blocks.path);
  deepStrictEqual(second.pythonData.scale, [2, 2, 2]);
  equal(second.pythonData.mesh, "AlphaMesh");
  deepStrictEqual(second.pythonData.materials, ["Red"]);
  deepStrictEqual(second.dataBlocks?.objects, [{ name: "Bricks", type: "MESH", returned: true }]);
  deepStrictEqual(second.dataBlocks?.materials, [
    { name: "Gold", type: "MATERIAL", returned: true },
    { name: "Red", type: "MATERIAL", returned: false },
  ]);
  deepStrictEqual(second.dataBlocks?.meshes, [{ name: "AlphaMesh", type: "MESH", returned: false }]);
});

Deno.test("a returned mesh's shape keys are listed with it, an empty data_blocks list returns nothing; removeJob deletes the library", async () => {
  await using manager = new JobManager();
  const keyedJob = manager.addJob({ script: fixture("make_keyed.py") });
  const keyed = (await keyedJob.result()).dataBlocks;
  ok(keyed !== null);
  deepStrictEqual(keyed.objects, [{ name: "Keyed", type: "MESH", returned: true }]);
  deepStrictEqual(keyed.meshes, [{ name: "KeyedMesh", type: "MESH", returned: false }]);
  deepStrictEqual(keyed.shape_keys, [{ name: "Key", type: "KEY", returned: false }]);
  const listed = await readBlendFile(keyed.path);
  deepStrictEqual(
    listed.ids.filter((id) => id.collection === "shape_keys").map((id) => id.name),
    ["Key"],
    "the library holds the key the manifest lists",
  );
  const none = await manager.addJob({ script: fixture("echo.py") }).result();
  equal(none.dataBlocks, null, "the pre-set empty data_blocks means no data blocks");
  manager.removeJob(keyedJob.name);
  await waitFor(() => !existsSync(keyed.path), 10_000, "removeJob to delete the job's library");
});

Deno.test("appendDataBlocks appends with .001 naming, or overwrites and remaps users; Blender and readBlendFile agree", async () => {
  await using manager = new JobManager();
  const scene = await makeScene(manager, "scene.blend");
  const target = join(manager.workRoot, "target.blend");
  await Deno.copyFile(scene, target);
  const alpha = (await manager.addJob({ script: fixture("return_alpha.py"), passedData: { x: 42 } }).result())
    .dataBlocks!;

  const appended = await manager.appendDataBlocks(alpha, { into: target });
  deepStrictEqual(appended.names, { objects: ["Alpha.001"] });
  let seen = await blenderIds(manager, target);
  equal(seen.locations["Alpha"], 0);
  equal(seen.locations["Alpha.001"], 42);
  ok(seen.scene_objects.includes("Alpha.001"), "an appended object is linked into the scene");

  const overwritten = await manager.appendDataBlocks(alpha, { into: target, overwrite: true });
  deepStrictEqual(overwritten.names, { objects: ["Alpha"] });
  seen = await blenderIds(manager, target);
  equal(seen.locations["Alpha"], 42, "the old Alpha was not replaced");
  deepStrictEqual(seen.scene_objects, ["Alpha", "Alpha.001", "Beta"]);
  const info = await readBlendFile(target);
  const objects = info.ids.filter((id) => id.code === "OB").map((id) => id.name).sort();
  deepStrictEqual(objects, ["Alpha", "Alpha.001", "Beta"]);
  deepStrictEqual(
    info.ids.filter((id) => seen.ids.some(([collection]) => collection === id.collection))
      .map((id) => [id.collection, id.name]).sort(),
    seen.ids,
  );

  const fresh = join(manager.workRoot, "fresh.blend");
  deepStrictEqual((await manager.appendDataBlocks(alpha, { into: fresh })).names, { objects: ["Alpha"] });
  deepStrictEqual((await blenderIds(manager, fresh)).scene_objects, ["Alpha"]);
  deepStrictEqual(manager.getJobNames().filter((name) => name.startsWith("append-")), [], "append jobs are removed");
});

Deno.test("overwrite replaces every same-named block the library holds, so appending twice changes nothing", async () => {
  await using manager = new JobManager();
  const scene = await makeScene(manager, "scene.blend");
  const target = join(manager.workRoot, "target.blend");
  await Deno.copyFile(scene, target);
  // Bricks uses the mesh AlphaMesh and the material Red, as the target's Alpha does.
  const bricks = (await manager.addJob({
    script: fixture("make_bricks.py"),
    passedDataBlocks: { from: scene, objects: ["Alpha"] },
  }).result()).dataBlocks!;
  const keyed = (await manager.addJob({ script: fixture("make_keyed.py"), passedData: { blue: 1 } }).result())
    .dataBlocks!;
  const allIds = async () => (await readBlendFile(target)).ids.map((id) => `${id.code}:${id.name}`).sort();

  deepStrictEqual((await manager.appendDataBlocks(bricks, { into: target, overwrite: true })).names, {
    objects: ["Bricks"],
  });
  deepStrictEqual((await manager.appendDataBlocks(keyed, { into: target, overwrite: true })).names, {
    objects: ["Keyed"],
  });
  const once = await allIds();
  const seen = await blenderIds(manager, target);
  deepStrictEqual(seen.ids.filter(([collection]) => ["objects", "meshes", "materials"].includes(collection)), [
    ["materials", "Red"],
    ["meshes", "AlphaMesh"],
    ["meshes", "BetaMesh"],
    ["meshes", "KeyedMesh"],
    ["objects", "Alpha"],
    ["objects", "Beta"],
    ["objects", "Bricks"],
    ["objects", "Keyed"],
  ]);
  equal(seen.object_data.Alpha, "AlphaMesh");
  equal(seen.object_data.Bricks, "AlphaMesh", "Alpha's old mesh was replaced by the library's AlphaMesh");
  deepStrictEqual(seen.material_colors.Red, [0, 0, 1, 1], "Red is the keyed job's blue one");
  deepStrictEqual(seen.mesh_materials.AlphaMesh, ["Red"]);
  deepStrictEqual(seen.mesh_materials.KeyedMesh, ["Red"], "the one Red, now the library's");
  deepStrictEqual(seen.shape_keys, [["Key", "KeyedMesh", ["Basis", "Smile"]]]);
  deepStrictEqual(seen.orphans, []);

  for (let round = 0; round < 2; round++) {
    await manager.appendDataBlocks(bricks, { into: target, overwrite: true });
    await manager.appendDataBlocks(keyed, { into: target, overwrite: true });
    deepStrictEqual(await allIds(), once, `overwrite append #${round + 2} changed the file's blocks`);
  }
  const again = await blenderIds(manager, target);
  deepStrictEqual(again.ids, seen.ids);
  deepStrictEqual(again.shape_keys, seen.shape_keys);
  deepStrictEqual(again.object_data, seen.object_data);
  deepStrictEqual(again.orphans, []);
  deepStrictEqual(again.scene_objects, ["Alpha", "Beta", "Bricks", "Keyed"]);
});

Deno.test("readBlendFile agrees with Blender's own listing on plain, zstd and gzip files", async () => {
  await using manager = new JobManager();
  const plain = await makeScene(manager, "plain.blend");
  const zstd = await makeScene(manager, "zstd.blend", true);
  const gzip = join(manager.workRoot, "gzip.blend");
  await Deno.writeFile(gzip, gzipSync(await Deno.readFile(plain)));
  for (const [path, compression] of [[plain, "none"], [zstd, "zstd"], [gzip, "gzip"]] as const) {
    const info = await readBlendFile(path);
    equal(info.compression, compression);
    const blender = await blenderIds(manager, path);
    equal(info.version, blender.version, "the version that wrote the file is the one that reads it here");
    equal(info.pointerSize, 8);
    equal(info.endianness, "little");
    const collections = new Set(blender.ids.map(([collection]) => collection));
    deepStrictEqual(
      info.ids.filter((id) => id.collection !== null && collections.has(id.collection))
        .map((id) => [id.collection, id.name]).sort(),
      blender.ids,
      `${compression}: readBlendFile and Blender disagree`,
    );
  }
});

Deno.test("unknown block names and non-.blend files are rejected before any Blender starts", async () => {
  await using manager = new JobManager();
  const scene = await makeScene(manager, "scene.blend");
  const before = manager.getJobNames();
  throws(
    () => manager.addJob({ script: fixture("echo.py"), passedDataBlocks: { from: scene, objects: ["Gamma"] } }),
    (error: unknown) =>
      error instanceof InvalidJobError && error.field === "passedDataBlocks.objects" &&
      /has no objects named "Gamma" \(it has: "Alpha", "Beta"\)/.test(error.message),
  );
  throws(
    () =>
      manager.addJob({ script: fixture("echo.py"), passedDataBlocks: { from: fixture("echo.py"), objects: ["A"] } }),
    (error: unknown) => error instanceof InvalidJobError && /no BLENDER header/.test(error.message),
  );
  throws(
    () => manager.addJob({ script: fixture("echo.py"), passedDataBlocks: { from: "/no/such.blend" } }),
    InvalidJobError,
  );
  throws(
    () => manager.addJob({ script: fixture("echo.py"), passedDataBlocks: { from: scene, bogus: ["x"] } as never }),
    (error: unknown) => error instanceof InvalidJobError && error.field === "passedDataBlocks.bogus",
  );
  await rejects(
    manager.appendDataBlocks({ from: scene, objects: ["Gamma"] }, { into: join(manager.workRoot, "t.blend") }),
    InvalidJobError,
  );
  await rejects(
    manager.appendDataBlocks({ from: scene, objects: ["Alpha"] }, { into: fixture("echo.py") }),
    InvalidJobError,
  );
  await rejects(readBlendFile(fixture("echo.py")), InvalidJobError);
  deepStrictEqual(manager.getJobNames(), before);
});

Deno.test("a None or removed block in data_blocks is an error naming its index", async () => {
  await using manager = new JobManager();
  for (
    const [kind, pattern] of [["none", /data_blocks\[1\] is None/], [
      "removed",
      /data_blocks\[0\] was removed/,
    ]] as const
  ) {
    const error = await manager.addJob({ script: fixture("bad_data_blocks.py"), passedData: { kind } }).result().then(
      () => undefined,
      (e) => e,
    );
    ok(error instanceof JobDroppedError);
    equal(error.reason, "error");
    match(error.message, pattern);
  }
});

// DATA_BLOCK_COLLECTIONS is the one list. The runtime reads this Blender's collections from its RNA
// (python/bgproc/_compat.py), and readBlendFile maps ID codes to collections (src/blend/ids.ts): both are checked
// against it here, the first two on whichever Blender runs the tests.

Deno.test("every data-block collection this Blender has is one DATA_BLOCK_COLLECTIONS lists, and readBlendFile names its blocks as Blender does", async () => {
  await using manager = new JobManager({ maxAttempts: 1 });
  const out = join(manager.workRoot, "every.blend");
  const made = await manager.addJob({ script: fixture("every_block.py"), passedData: { out } }).result();
  const listed = (await manager.addJob({ script: fixture("every_block.py"), blendFile: out }).result()).pythonData as {
    blocks: [string, string][];
    collections: string[];
    blender: string;
  };
  const collections = listed.collections;
  ok(collections.includes("objects") && collections.includes("meshes"), `${listed.blender}: ${collections}`);
  const missing = collections.filter((name) => !(DATA_BLOCK_COLLECTIONS as readonly string[]).includes(name));
  deepStrictEqual(missing, [], `Blender ${listed.blender} has collections bgproc does not list`);

  const madeIn = made.pythonData.made as string[];
  ok(madeIn.length >= 25, `the fixture made blocks in only ${madeIn.length} collections: ${madeIn}`);
  const inBlender = new Set(listed.blocks.map(([collection]) => collection));
  ok(inBlender.has("shape_keys"), "a shape key was saved");
  const info = await readBlendFile(out);
  const read = info.ids.filter((id) => !id.linked && id.collection !== null && collections.includes(id.collection))
    .map((id) => [id.collection, id.name]).sort();
  deepStrictEqual(read, listed.blocks, `Blender ${listed.blender} and readBlendFile disagree`);
  const unnamed = info.ids.filter((id) => id.collection === null).map((id) => id.code);
  deepStrictEqual(unnamed, [], "ID codes readBlendFile maps to no collection");
});

Deno.test("readBlendFile maps ID codes only to DATA_BLOCK_COLLECTIONS (or the non-data-block ones), and each of those has a code", () => {
  // Not data blocks a job passes: file and UI bookkeeping (python/bgproc/_compat.py leaves these out too), and the
  // IPO curves of files older than 2.5.
  const bookkeeping = ["libraries", "screens", "window_managers", "ipos"];
  const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const mapped = new Set<string>();
  for (const version of [304, 403, 502]) {
    for (const first of letters) {
      for (const second of letters) {
        const collection = collectionOf(first + second, version);
        if (collection !== null) mapped.add(collection);
      }
    }
  }
  const known = [...DATA_BLOCK_COLLECTIONS, ...bookkeeping] as string[];
  deepStrictEqual([...mapped].filter((collection) => !known.includes(collection)), []);
  deepStrictEqual(DATA_BLOCK_COLLECTIONS.filter((collection) => !mapped.has(collection)), []);
});

Deno.test("blocks from a file the machine's own Blender wrote travel into a job on this Blender", async () => {
  // `blender` on PATH (3.4 on Debian bookworm) writes; $BLENDER (4.3 or 5.2 under `deno task test:blenders`) reads.
  const path = Deno.env.get("PATH") ?? "";
  await using older = new JobManager({ blender: findBlender({ env: { PATH: path } }) });
  await using newer = new JobManager();
  const scene = await makeScene(older, "old.blend");
  const written = await readBlendFile(scene);
  const { pythonData } = await newer.addJob({
    script: fixture("make_bricks.py"),
    passedDataBlocks: { from: scene, objects: ["Alpha"], materials: ["Red"] },
  }).result();
  deepStrictEqual(
    pythonData.seen,
    [["Object", "Alpha"], ["Material", "Red"], ["Mesh", "AlphaMesh"]],
    `from Blender ${written.version}`,
  );
  equal(pythonData.material, "Red");
});
