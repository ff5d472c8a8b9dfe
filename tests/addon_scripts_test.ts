/**
 * Scripts written for the add-on "background-processing" run unchanged, on every backend: fixtures patterned on its demo scripts
 * (test1.py remesh, test2.py bmesh square, test3.py metaballs, test4.py timeout), submitted with the arguments its
 * "Add Job" operator used, and the names and values add-on scripts rely on.
 *
 * The operator ran `add_job(script + "_" + object name, timeout=17.5, script, use_blend_file=False,
 * passed_data_blocks={object}, passed_data={"obj_name": ..., "mesh_name": ...})` with `max_attempts = 1`.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { dirname, join } from "node:path";
import { type DataBlocks, type Job, JobDroppedError, JobManager } from "../mod.ts";
import { BACKEND_NAMES, managerOn, startSharedCluster } from "./_backends.ts";
import { fixture } from "./_helpers.ts";

await startSharedCluster(); // Before any test: its processes are no test's resources.

const addon = (name: string) => fixture(join("addon", name));

/** What the add-on's operator passed for the object "Alpha" (mesh "AlphaMesh", material "Red") of `scene`. */
function operatorJob(script: string, scene: string, extra: Record<string, number> = {}) {
  return {
    name: `${script}_Alpha`,
    script: addon(script),
    timeout: 17_500,
    passedDataBlocks: { from: scene, objects: ["Alpha"] },
    passedData: { obj_name: "Alpha", mesh_name: "AlphaMesh", ...extra },
  };
}

async function makeScene(manager: JobManager): Promise<string> {
  const out = join(manager.workRoot, "host.blend");
  await manager.addJob({ script: fixture("make_scene.py"), passedData: { out } }).result();
  return out;
}

async function progressOf(job: Job): Promise<number[]> {
  const seen: number[] = [];
  for await (const value of job.progressUpdates()) seen.push(value);
  return seen;
}

/** The blocks of `blocks` as `collection:name:returned`, sorted, for the collections that hold any. */
function listing(blocks: DataBlocks | null): string[] {
  ok(blocks !== null, "the job returned data blocks");
  const { path: _, ...collections } = blocks;
  return Object.entries(collections).flatMap(([collection, list]) =>
    list.map((block) => `${collection}:${block.name}:${block.returned}`)
  ).sort();
}

const clampWarnings = (stderr: string) => stderr.match(/bgproc: warning: update_job_progress\(.*clamped.*/g) ?? [];

for (const mode of BACKEND_NAMES) {
  Deno.test(`${mode}: test1.py (remesh): the object comes back with its modifier, and its mesh and material with it`, async () => {
    await using manager = await managerOn(mode, { maxAttempts: 1 });
    const scene = await makeScene(manager);
    const job = manager.addJob(operatorJob("remesh.py", scene));
    const progress = progressOf(job);
    const result = await job.result();
    equal((await progress).at(-1), 1);
    equal(result.pythonData.pi, 3.14159);
    ok((result.pythonData.remeshed_vertices as number) > 0, "the remeshed mesh has vertices");
    if (mode === "nats") {
      // A worker has its own copy of the file (its cache): os.path.dirname(source_blend_file) is that copy's folder.
      ok(String(result.pythonData.output_dir).includes("/bgproc-files/"), String(result.pythonData.output_dir));
    } else {
      equal(result.pythonData.output_dir, dirname(scene), "os.path.dirname(source_blend_file) is the host's folder");
    }
    deepStrictEqual(listing(result.dataBlocks), [
      "materials:Red:false",
      "meshes:AlphaMesh:false",
      "objects:Alpha:true",
    ]);
    deepStrictEqual(listing(await manager.getRetrievedDataBlocks("remesh.py_Alpha")), listing(result.dataBlocks));

    const inspected = await manager.addJob({ script: addon("inspect.py"), passedDataBlocks: result.dataBlocks! })
      .result();
    deepStrictEqual(inspected.pythonData.received, ["Material:Red", "Mesh:AlphaMesh", "Object:Alpha"]);
    deepStrictEqual(inspected.pythonData.objects, {
      Alpha: { modifiers: ["REMESH"], data: "AlphaMesh", vertices: 8, materials: ["Red"] },
    });
  });

  Deno.test(`${mode}: test2.py (bmesh square): its last update_job_progress(1.01) is clamped with one warning, and the square comes back`, async () => {
    await using manager = await managerOn(mode, { maxAttempts: 1 });
    const scene = await makeScene(manager);
    const job = manager.addJob(operatorJob("square.py", scene));
    const progress = progressOf(job);
    const result = await job.result();
    const seen = await progress;
    equal(seen.at(-1), 1);
    ok(seen.every((value) => value >= 0 && value <= 1), `progress within 0..1: ${seen}`);
    const warnings = clampWarnings(result.stderr);
    equal(warnings.length, 1, `one warning per job: ${result.stderr}`);
    match(warnings[0]!, /update_job_progress\(1\.01\) is outside 0\.0 to 1\.0 and was clamped to 1\.0/);
    deepStrictEqual(result.pythonData, { pi: 3.14159, vertices: 12, faces: 7 });
    deepStrictEqual(listing(result.dataBlocks), [
      "materials:Red:false",
      "meshes:AlphaMesh:false",
      "objects:Square Object:true",
    ]);
  });

  Deno.test(`${mode}: test3.py (metaballs): the volume comes back as a mesh object; the metaballs are gone`, async () => {
    await using manager = await managerOn(mode, { maxAttempts: 1 });
    const scene = await makeScene(manager);
    const job = manager.addJob(operatorJob("metaballs.py", scene));
    const progress = progressOf(job);
    const result = await job.result();
    equal((await progress).at(-1), 1);
    ok((result.pythonData.vertices as number) > 8, `the volume has ${result.pythonData.vertices} vertices`);
    equal(result.pythonData.metaballs_left, 0);
    const blocks = result.dataBlocks!;
    deepStrictEqual(blocks.objects, [{ name: "Volume Mesh Object", type: "MESH", returned: true }]);
    equal(blocks.meshes.length, 1);
    equal(blocks.meshes[0]!.returned, false);
    deepStrictEqual(blocks.metaballs, []);
    const inspected = await manager.addJob({ script: addon("inspect.py"), passedDataBlocks: blocks }).result();
    const volume = (inspected.pythonData.objects as Record<string, { vertices: number }>)["Volume Mesh Object"];
    equal(volume?.vertices, result.pythonData.vertices);
  });
}

Deno.test("test4.py (timeout): the job runs past its timeout and is dropped as timed out", async () => {
  await using manager = new JobManager({ maxAttempts: 1 });
  const scene = await makeScene(manager);
  // The demo runs 200 steps of 0.1 s against the operator's 17.5 s; here 200 of 0.02 s against 3 s, the same story
  // in less time: the loop alone outlasts the timeout.
  const job = manager.addJob({ ...operatorJob("timeout.py", scene, { pause: 0.02 }), timeout: 3_000 });
  const error = await job.result().then(() => undefined, (e: unknown) => e);
  ok(error instanceof JobDroppedError, `dropped: ${error}`);
  equal(error.reason, "timed-out");
  equal(error.attempts, 1);
  equal(manager.getJobState("timeout.py_Alpha"), "DROPPED");
  match(manager.getIssueString("timeout.py_Alpha") ?? "", /timed-out|timeout/);
});

for (const mode of BACKEND_NAMES) {
  Deno.test(`${mode}: passed_data keys that would hide a builtin or a runtime name stay in passed_data, with one warning; data_blocks and python_data are pre-set`, async () => {
    await using manager = await managerOn(mode, { maxWorkers: 1, maxAttempts: 1 });
    const passedData = {
      range: 3,
      len: "x",
      Exception: 1,
      print: "p",
      update_job_progress: 0.5,
      data_blocks: "no",
      plain: "yes",
    };
    for (let run = 0; run < 2; run++) {
      const result = await manager.addJob({ script: addon("names.py"), passedData }).result();
      deepStrictEqual(result.pythonData, {
        preset: { data_blocks: true, python_data: true },
        range: [0, 1, 2],
        len: 4,
        exception_is_builtin: true,
        progress_is_callable: true,
        passed_range: 3,
        plain: "yes",
      });
      match(result.stdout, /names\.py printed/);
      const warnings = result.stderr.match(/bgproc: warning: passed_data keys? .*/g) ?? [];
      equal(warnings.length, 1, `run ${run + 1}: one warning: ${result.stderr}`);
      for (const key of ["range", "len", "Exception", "print", "update_job_progress", "data_blocks"]) {
        ok(warnings[0]!.includes(`'${key}'`), `the warning names ${key}: ${warnings[0]}`);
      }
      ok(!warnings[0]!.includes("'plain'"));
      deepStrictEqual(listing(result.dataBlocks), ["materials:Made:true"], "data_blocks.append on the pre-set list");
    }
    const empty = await manager.addJob({ script: addon("names.py"), passedData: { plain: 1, return_empty: true } })
      .result();
    equal(empty.dataBlocks, null, "an empty data_blocks list is no data blocks");
    equal(clampWarnings(empty.stderr).length + (empty.stderr.match(/bgproc: warning/g) ?? []).length, 0);
  });

  Deno.test(`${mode}: update_job_progress clamps finite values with one warning per job; NaN, infinities, bools and text raise`, async () => {
    await using manager = await managerOn(mode, { maxWorkers: 1, maxAttempts: 1 });
    for (let run = 0; run < 2; run++) {
      const job = manager.addJob({ script: addon("progress_edges.py") });
      const progress = progressOf(job);
      const result = await job.result();
      deepStrictEqual(result.pythonData.raised, {
        nan: "ValueError",
        inf: "ValueError",
        bool: "TypeError",
        text: "TypeError",
        none: "TypeError",
      });
      const warnings = clampWarnings(result.stderr);
      equal(warnings.length, 1, `run ${run + 1}: one warning per job: ${result.stderr}`);
      match(warnings[0]!, /update_job_progress\(-0\.5\) is outside 0\.0 to 1\.0 and was clamped to 0\.0/);
      const seen = await progress;
      ok(seen.every((value) => value >= 0 && value <= 1), `progress within 0..1: ${seen}`);
      equal(seen.at(-1), 1);
    }
  });
}

Deno.test("source_blend_file is blendFile, else the file passedDataBlocks came from, else None", async () => {
  await using manager = new JobManager({ maxAttempts: 1 });
  const scene = await makeScene(manager);
  const other = join(manager.workRoot, "other.blend");
  await Deno.copyFile(scene, other);
  const sourceOf = async (options: { blendFile?: string; passedDataBlocks?: { from: string; objects: string[] } }) =>
    (await manager.addJob({ script: addon("inspect.py"), ...options }).result()).pythonData.source_blend_file;
  equal(await sourceOf({ blendFile: scene }), scene);
  equal(await sourceOf({ passedDataBlocks: { from: other, objects: ["Beta"] } }), other);
  equal(await sourceOf({ blendFile: scene, passedDataBlocks: { from: other, objects: ["Beta"] } }), scene);
  equal(await sourceOf({}), null);
});
