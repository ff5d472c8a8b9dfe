/**
 * The NATS cluster against a real nats-server and real Blender: three worker
 * processes (separate work roots, own process groups) as the "machines", and
 * hosts submitting with NatsJobManager.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { InvalidJobError, JobDroppedError, readBlendFileSync } from "../../mod.ts";
import { NatsJobManager } from "../../src/nats/manager.ts";
import { fixture, isAlive } from "../_helpers.ts";
import { startNatsServer, startWorker, type WorkerProcess } from "./_server.ts";

const WORKER_ARGS = [
  "--mode",
  "pool",
  "--workers",
  "1",
  "--ack-wait",
  "1500",
  "--grace",
  "2000",
  "--max-attempts",
  "3",
];
const step = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "a NATS cluster of three workers runs, routes, kills, retries and keeps jobs",
  fn: async (t) => {
    await using server = await startNatsServer();
    await using left = await startWorker(server.url, [...WORKER_ARGS, "--tags", "left"]);
    await using right = await startWorker(server.url, [...WORKER_ARGS, "--tags", "right"]);
    await using gpu = await startWorker(server.url, [...WORKER_ARGS, "--tags", "gpu"]);
    const processes: WorkerProcess[] = [left, right, gpu];
    const options = { nats: { servers: server.url }, ackWaitMs: 1500, retry: { delayMs: 50 } };
    let manager = await NatsJobManager.connect(options);
    const tmp = await Deno.makeTempDir({ prefix: "bgproc-nats-test-" });
    const idOf = (worker: WorkerProcess) => worker.output.find((line) => line.includes(" ready "))!.split(" ")[2]!;
    try {
      await t.step({
        name: "workers() lists the three live workers with their capabilities",
        fn: async () => {
          const workers = await manager.workers();
          assert.deepEqual(workers.map((w) => w.tags.join(",")).sort(), ["gpu", "left", "right"]);
          for (const worker of workers) {
            assert.equal(worker.mode, "pool");
            assert.equal(worker.slots, 1);
            assert.match(worker.blenderVersion, /^\d+\.\d+/);
          }
        },
        ...step,
      });

      await t.step({
        name: "30 jobs spread over the three workers, every result correct",
        fn: async () => {
          const jobs = Array.from({ length: 30 }, (_, i) =>
            manager.addJob({
              name: `batch-${i}`,
              script: fixture("sleep.py"),
              passedData: { seconds: 0.2, i },
            }));
          const results = await Promise.all(jobs.map((job) => job.result()));
          for (const [i, result] of results.entries()) {
            assert.equal(result.name, `batch-${i}`);
            assert.deepEqual(result.pythonData, { slept: true });
          }
          const workers = new Set(jobs.map((job) => manager.getJobWorker(job.name)));
          assert.equal(workers.size, 3, `jobs ran on ${[...workers].join(", ")}`);
          assert.equal(manager.counts.completed, 30);
        },
        ...step,
      });

      await t.step({
        name: "a job requiring a tag runs on the one worker that has it",
        fn: async () => {
          const jobs = Array.from(
            { length: 3 },
            (_, i) => manager.addJob({ name: `gpu-${i}`, script: fixture("echo.py"), requires: ["gpu"] }),
          );
          await Promise.all(jobs.map((job) => job.result()));
          for (const job of jobs) assert.equal(manager.getJobWorker(job.name), idOf(gpu));
        },
        ...step,
      });

      await t.step({
        name: "a job named as the add-on names jobs (Unicode, a space, dots) runs and is found by name",
        fn: async () => {
          const name = "test1.py_Würfel Objekt";
          const result = await manager.addJob({ name, script: fixture("echo.py"), passedData: { n: 1 } }).result();
          assert.equal(result.name, name);
          assert.deepEqual((result.pythonData.passed_data as { n: number }).n, 1);
          assert.ok(manager.getJobNames().includes(name));
          assert.equal(manager.getJobState(name), "COMPLETED");
        },
        ...step,
      });

      await t.step({
        name: "how a job's Blender runs (addons, factoryStartup, progress) travels to the worker",
        fn: async () => {
          const result = await manager.addJob({
            name: "startup",
            script: fixture("startup_probe.py"),
            addons: ["node_wrangler"],
            factoryStartup: true,
            progress: "script",
            passedData: { check: ["node_wrangler"] },
          }).result();
          assert.deepEqual(result.pythonData.loaded, { node_wrangler: true });
          assert.equal(result.pythonData.factory_startup, true);
          assert.throws(
            () => manager.addJob({ script: fixture("echo.py"), progress: "frames" as never }),
            /'progress'/,
          );
        },
        ...step,
      });

      await t.step({
        name: "a job's outputs travel back through the object store, into its outputDir or the host's work root",
        fn: async () => {
          const blendFile = join(tmp, "shot.blend");
          await manager.addJob({ script: fixture("make_render_scene.py"), passedData: { path: blendFile } }).result();
          const elsewhere = join(tmp, "still.png");
          const out = join(tmp, "out");
          const kept = await manager.addJob({
            name: "outputs",
            script: fixture("render_own_path.py"),
            blendFile,
            passedData: { elsewhere },
            outputDir: out,
          }).result();
          assert.deepEqual(kept.outputs.map((output) => [output.path, output.kind]), [
            [join(out, "notes", "readme.txt"), "other"],
            [join(out, "renders", "frame_0001.png"), "image"],
            [join(out, "renders", "frame_0002.png"), "image"],
            [join(out, "renders", "frame_0003.png"), "image"],
            // Not `elsewhere`: saved outside the job's folder, where a script's own `Saved:` line could point.
          ]);
          for (const output of kept.outputs) assert.equal((await Deno.stat(output.path)).size, output.bytes);
          const plain = await manager.addJob({
            name: "outputs-default",
            script: fixture("render_own_path.py"),
            blendFile,
            passedData: { elsewhere },
          }).result();
          const first = plain.outputs[0]!.path;
          assert.ok(first.startsWith(manager.workRoot), first);
          await manager.removeJob("outputs-default");
          assert.equal(await Deno.stat(first).then(() => true, () => false), false, "removed with the job");
        },
        ...step,
      });

      await t.step({
        name: "passed data and python_data larger than a KV value travel through the object store",
        fn: async () => {
          const big = "ü".repeat(600_000);
          const result = await manager.addJob({ name: "big", script: fixture("echo.py"), passedData: { big } })
            .result();
          assert.equal((result.pythonData.passed_data as { big: string }).big, big);
        },
        ...step,
      });

      await t.step({
        name: "a data-block chain across two workers",
        fn: async () => {
          const alpha = await manager.addJob({
            name: "chain-alpha",
            script: fixture("return_alpha.py"),
            passedData: { x: 42 },
            requires: ["left"],
          }).result();
          assert.ok(alpha.dataBlocks !== null);
          assert.deepEqual(alpha.dataBlocks.objects.map((o) => o.name), ["Alpha"]);
          const listed = await manager.addJob({
            name: "chain-list",
            script: fixture("list_ids.py"),
            passedDataBlocks: alpha.dataBlocks,
            requires: ["right"],
          }).result();
          assert.equal(manager.getJobWorker("chain-alpha"), idOf(left));
          assert.equal(manager.getJobWorker("chain-list"), idOf(right));
          assert.equal((listed.pythonData.locations as Record<string, number>).Alpha, 42);
          // The append is a job like any other: on a worker, the file travelling there and back; the host needs no Blender.
          const into = join(tmp, "appended.blend");
          const appended = await manager.appendDataBlocks(alpha.dataBlocks, { into });
          assert.deepEqual(appended.names.objects, ["Alpha"]);
          const again = await manager.appendDataBlocks(alpha.dataBlocks, { into, overwrite: true });
          assert.deepEqual(again.names.objects, ["Alpha"]);
          const objects = readBlendFileSync(into).ids.filter((id) => id.code === "OB").map((id) => id.name);
          assert.deepEqual(objects, ["Alpha"], "overwrite leaves one Alpha, no Alpha.001");
          assert.ok([left, right].some((worker) => worker.output.some((line) => / started append-/.test(line))));
          await assert.rejects(
            manager.appendDataBlocks(alpha.dataBlocks, { into, link: true }),
            (error: InvalidJobError) => error instanceof InvalidJobError && error.field === "link",
          );
        },
        ...step,
      });

      await t.step({
        name: "a .blend shared by ten jobs is uploaded once",
        fn: async () => {
          const blend = join(tmp, "shared.blend");
          const library = await manager.getRetrievedDataBlocks("chain-alpha");
          assert.ok(library !== null);
          await Deno.copyFile(library.path, blend);
          // Make the content new to the store: append bytes Blender ignores after ENDB.
          await Deno.writeFile(blend, new TextEncoder().encode(`bgproc ${crypto.randomUUID()}`), { append: true });
          const before = manager.files;
          const jobs = Array.from(
            { length: 10 },
            (_, i) => manager.addJob({ name: `shared-${i}`, script: fixture("list_ids.py"), blendFile: blend }),
          );
          const results = await Promise.all(jobs.map((job) => job.result()));
          for (const result of results) {
            assert.ok((result.pythonData.scene_objects as string[]).length >= 0);
            assert.ok((result.pythonData.ids as string[][]).some(([c, n]) => c === "objects" && n === "Alpha"));
          }
          const after = manager.files;
          assert.equal(after.uploaded - before.uploaded, 1, JSON.stringify({ before, after }));
          assert.equal(after.reused - before.reused, 19);
        },
        ...step,
      });

      await t.step({
        name: "kill() of a running job ends it on its remote worker, with its Blender",
        fn: async () => {
          const pidFile = join(tmp, "sleeper.pid");
          const job = manager.addJob({
            name: "sleeper",
            script: fixture("sleep.py"),
            passedData: { pid_file: pidFile },
          });
          for await (const progress of job.progressUpdates()) if (progress > 0) break;
          assert.equal(job.state, "ACTIVE");
          {
            // A second host sees the running job, its worker and its progress (from the record).
            await using other = await NatsJobManager.connect(options);
            for (let i = 0; i < 100 && other.getJobProgress("sleeper") === 0; i++) {
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
            assert.equal(other.getJobState("sleeper"), "ACTIVE");
            assert.equal(other.getJobProgress("sleeper"), 0.1);
            assert.equal(other.getJobWorker("sleeper"), manager.getJobWorker("sleeper"));
          }
          const pid = Number(await Deno.readTextFile(pidFile));
          await job.kill();
          await assert.rejects(job.result(), (error) => error instanceof JobDroppedError && error.reason === "killed");
          for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 20));
          assert.equal(isAlive(pid), false);
        },
        ...step,
      });

      await t.step({
        name: "killing a queued job removes it from the queue",
        fn: async () => {
          const job = manager.addJob({ name: "never", script: fixture("echo.py"), requires: ["nobody-has-this"] });
          await (job as unknown as { submitted: Promise<void> }).submitted;
          assert.equal(job.state, "QUEUED");
          await job.kill();
          assert.equal(job.state, "DROPPED");
          await assert.rejects(job.result(), (error) => error instanceof JobDroppedError && error.reason === "killed");
        },
        ...step,
      });

      await t.step({
        name: "a failing job is retried up to maxAttempts, then dropped with its report and dead-lettered",
        fn: async () => {
          const job = manager.addJob({ name: "raiser", script: fixture("raise.py"), maxAttempts: 2 });
          const error = await job.result().then(() => null, (e) => e);
          assert.ok(error instanceof JobDroppedError);
          assert.equal(error.reason, "error");
          assert.equal(error.attempts, 2);
          assert.match(error.report, /bad value: 42/);
          // The worker records the drop, then publishes the dead letter.
          let letters = await manager.deadLetters();
          for (let i = 0; i < 100 && !letters.some((letter) => letter.name === "raiser"); i++) {
            await new Promise((resolve) => setTimeout(resolve, 20));
            letters = await manager.deadLetters();
          }
          const letter = letters.find((letter) => letter.name === "raiser");
          assert.equal(letter?.attempts, 2);
          assert.equal(letter.report.reason, "error");
        },
        ...step,
      });

      await t.step({
        name: "a host that closes and comes back finds jobs and results, also of jobs that ended while it was away",
        fn: async () => {
          manager.addJob({ name: "while-away", script: fixture("sleep.py"), passedData: { seconds: 1 } });
          await (manager.getJob("while-away") as unknown as { submitted: Promise<void> }).submitted;
          await manager.close();
          manager = await NatsJobManager.connect(options);
          assert.deepEqual((await manager.getJob("while-away")!.result()).pythonData, { slept: true });
          assert.equal(manager.getJobState("batch-7"), "COMPLETED");
          assert.deepEqual(await manager.getRetrievedPythonData("batch-7"), { slept: true });
          assert.match(manager.getIssueString("raiser") ?? "", /bad value: 42/);
          assert.ok(manager.getJobNames({ state: "COMPLETED" }).length >= 46);
        },
        ...step,
      });

      await t.step({
        name: "the server restarted with the same store loses nothing",
        fn: async () => {
          const jobs = Array.from(
            { length: 6 },
            (_, i) =>
              manager.addJob({ name: `restart-${i}`, script: fixture("sleep.py"), passedData: { seconds: 0.3 } }),
          );
          await Promise.all(jobs.map((job) => (job as unknown as { submitted: Promise<void> }).submitted));
          await server.restart();
          const results = await Promise.all(jobs.map((job) => job.result()));
          assert.equal(results.length, 6);
          assert.equal(manager.getJobState("batch-0"), "COMPLETED");
        },
        ...step,
      });

      await t.step({
        name: "SIGKILL of a worker's process group mid-job: the job completes on another worker",
        fn: async () => {
          const job = manager.addJob({ name: "survivor", script: fixture("sleep.py"), passedData: { seconds: 1.5 } });
          for await (const progress of job.progressUpdates()) if (progress > 0) break;
          const victimId = manager.getJobWorker("survivor");
          const victim = processes.find((worker) => idOf(worker) === victimId);
          assert.ok(victim !== undefined, `no worker process for ${victimId}`);
          await victim.killGroup();
          const result = await job.result();
          assert.deepEqual(result.pythonData, { slept: true });
          assert.equal(result.attempts, 2);
          assert.notEqual(manager.getJobWorker("survivor"), victimId);
          processes.splice(processes.indexOf(victim), 1);
        },
        ...step,
      });
    } finally {
      await manager.close();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
