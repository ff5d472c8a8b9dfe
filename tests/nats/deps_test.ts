/**
 * A render farm's promise: a .blend and every file it uses reach a worker whose work root is elsewhere. The host
 * lists them with Blender (tests/fixtures/make_shot.py: a linked library in a subfolder with its own texture, a
 * texture by a relative path and one by an absolute path, a sound, an image sequence, UDIM tiles, a text, a script
 * importing a helper module from its folder), uploads each once by SHA-256, and the worker lays them out so every path
 * resolves: its render equals the local one, pixel for pixel. The shot's folder is moved away before the worker runs,
 * so only what travelled can be used. A second submission uploads nothing.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { InvalidJobError, JobManager } from "../../mod.ts";
import { NatsJobManager } from "../../src/nats/manager.ts";
import { openCluster } from "../../src/nats/_connection.ts";
import { readRecord } from "../../src/nats/_records.ts";
import { fixture } from "../_helpers.ts";
import { makeShot } from "../_shot.ts";
import { startNatsServer, startWorker } from "./_server.ts";

Deno.test("over NATS a .blend's libraries, textures (relative and absolute), sequences, UDIM tiles, sound and the script's module travel: the worker's render equals the local one, and a second job uploads nothing", async () => {
  await using local = new JobManager({ mode: "process" });
  const shot = await makeShot(local, true);
  const moved = `${shot.root}-moved`;
  const outputs = await Deno.makeTempDir({ prefix: "bgproc-farm-out-" });
  await using server = await startNatsServer();
  const host = await NatsJobManager.connect({ nats: { servers: server.url, namespace: "farm" }, maxAttempts: 1 });
  const cluster = await openCluster({ servers: server.url }, "farm");
  try {
    const here = await local.addJob({ script: shot.script, blendFile: shot.blend, passedData: { render: true } })
      .result();
    const still = here.outputs.find((output) => output.path.endsWith("still.png"))!.path;

    const job = host.addJob({
      name: "shot-1",
      script: shot.script,
      blendFile: shot.blend,
      passedData: { render: true },
      outputDir: join(outputs, "1"),
    });
    // Queued, every file uploaded: now the host's folder goes away (renamed), and the worker starts.
    for (let i = 0; i < 600 && (await readRecord(cluster.jobs, "shot-1"))?.record.state !== "QUEUED"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const record = (await readRecord(cluster.jobs, "shot-1"))!.record;
    assert.equal(record.spec.layout?.files.length, 12, JSON.stringify(record.spec.layout));
    await Deno.rename(shot.root, moved);
    let result;
    {
      await using _worker = await startWorker(server.url, ["--namespace", "farm", "--mode", "process"]);
      result = await job.result();
    }
    await Deno.rename(moved, shot.root);
    assert.deepEqual(result.pythonData, { value: 7 }, "the script imported its helper module");
    assert.match(result.stderr, /bgproc: warning: a file the job's .blend uses is missing: \S+missing\.png \(image/);
    const there = result.outputs.find((output) => output.path.endsWith("still.png"))!.path;
    const compared = await local.addJob({ script: fixture("compare_images.py"), passedData: { a: still, b: there } })
      .result();
    assert.deepEqual(compared.pythonData.sizes, [[64, 32], [64, 32]]);
    assert.equal(compared.pythonData.magenta, 0, "no texture is missing (Blender draws missing ones magenta)");
    assert.equal(compared.pythonData.maxDifference, 0, "the worker's render is the local one");

    // A second job of the same shot uploads nothing: every file is in the store by its hash.
    const before = host.files;
    const again = host.addJob({ name: "shot-2", script: shot.script, blendFile: shot.blend });
    {
      await using _worker = await startWorker(server.url, ["--namespace", "farm", "--mode", "process"]);
      assert.deepEqual((await again.result()).pythonData, { value: 7 });
    }
    assert.equal(host.files.uploadedBytes - before.uploadedBytes, 0);
    assert.equal(host.files.uploaded, before.uploaded);

    // missingFiles: "fail" drops a job whose .blend uses a missing file before it is queued.
    const strict = host.addJob({ name: "shot-3", script: shot.script, blendFile: shot.blend, missingFiles: "fail" });
    const refused = await strict.result().then(() => null, (error) => error);
    assert.ok(refused instanceof InvalidJobError, String(refused));
    assert.match(refused.message, /files its \.blend uses are missing: \S+missing\.png/);
  } finally {
    await Deno.rename(moved, shot.root).catch(() => {});
    await cluster.nc.drain();
    await host.close();
    await Deno.remove(shot.root, { recursive: true }).catch(() => {});
    await Deno.remove(outputs, { recursive: true }).catch(() => {});
  }
});
