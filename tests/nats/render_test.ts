/**
 * `render()` over NATS, against a real nats-server, two real `bgproc worker` processes and real Blender: 24 frames
 * in chunks of 4, one worker SIGKILLed mid-render. Every frame comes back into the host's `outputDir`, with one
 * progress and one result, and the chunk the dead worker held runs again on the other; the video step and
 * `bgproc render --nats` too.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { JobManager } from "../../mod.ts";
import { NatsJobManager } from "../../src/nats/mod.ts";
import { fixture } from "../_helpers.ts";
import { bgprocCommand, startNatsServer, startWorker, type WorkerProcess } from "./_server.ts";

const WORKER_ARGS = ["--namespace", "farm", "--workers", "1", "--mode", "fork", "--ack-wait", "2000"];

Deno.test("render over NATS: 24 frames in chunks of 4 on two workers, one killed mid-render, all in outputDir", async () => {
  await using server = await startNatsServer();
  const dir = await Deno.makeTempDir({ prefix: "bgproc-nats-render-" });
  const workers: WorkerProcess[] = [];
  try {
    const blendFile = join(dir, "shot.blend");
    {
      await using local = new JobManager();
      await local.addJob({ script: fixture("render_scene.py"), passedData: { out: blendFile } }).result();
    }
    workers.push(await startWorker(server.url, WORKER_ARGS));
    workers.push(await startWorker(server.url, WORKER_ARGS));
    const idOf = (worker: WorkerProcess) => worker.output.find((line) => line.includes(" ready "))!.split(" ")[2]!;
    await using manager = await NatsJobManager.connect({
      nats: { servers: server.url, namespace: "farm" },
      ackWaitMs: 2000,
      maxAttempts: 3,
    });
    const outputDir = join(dir, "frames");
    const render = manager.render({ blendFile, frames: "1-24", chunk: 4, outputDir, samples: 1 });
    equal(render.chunks.length, 6);

    // Mid-render: a chunk done, and the victim running another.
    const victim = workers[0]!;
    let held: string | undefined;
    for (let i = 0; i < 6000 && held === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const done = render.chunks.some((chunk) => chunk.job.state === "COMPLETED");
      const running = render.chunks.find((chunk) =>
        chunk.job.state === "ACTIVE" && manager.getJobWorker(chunk.name) === idOf(victim)
      );
      if (done && running !== undefined) held = running.name;
    }
    ok(held !== undefined, "no moment with a chunk done and one running on the victim");
    await victim.killGroup();
    // The chunk seen running may have finished in the milliseconds before the kill (fork mode is quick): the chunks
    // the dead victim still holds once its last writes have arrived are the ones that must run again.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const stillHeld = render.chunks.find((chunk) =>
      chunk.job.state === "ACTIVE" && manager.getJobWorker(chunk.name) === idOf(victim)
    );
    if (stillHeld !== undefined) held = stillHeld.name;

    const progress: number[] = [];
    for await (const update of render.progressUpdates()) progress.push(update.fraction);
    const result = await render.result();
    deepStrictEqual(result.frames.map((frame) => frame.frame), Array.from({ length: 24 }, (_, i) => i + 1));
    for (const frame of result.frames) {
      equal(frame.path, join(outputDir, `frame_${String(frame.frame).padStart(4, "0")}.png`));
      ok(Deno.statSync(frame.path).size > 0, `${frame.path} is empty`);
    }
    const pngs = [...Deno.readDirSync(outputDir)].filter((entry) => entry.name.endsWith(".png"));
    equal(pngs.length, 24);
    equal(progress.at(-1), 1);
    deepStrictEqual(progress, [...progress].sort((a, b) => a - b));
    // The chunk the victim held ran again, on the survivor (unless it had finished before the kill).
    if (stillHeld !== undefined) {
      ok(manager.getJob(held)!.attempts >= 2, `chunk ${held} ran ${manager.getJob(held)!.attempts} time(s)`);
      equal(manager.getJobWorker(held), idOf(workers[1]!));
    }

    // The video step: the frames travel to a worker as the video job's inputs, and the video comes back.
    const withVideo = await manager.render({
      blendFile,
      frames: "1-4",
      chunk: 2,
      outputDir: join(dir, "video"),
      samples: 1,
      video: { fps: 12 },
    }).result();
    equal(withVideo.video, join(dir, "video", "video.mp4"));
    ok(Deno.statSync(withVideo.video!).size > 0);

    // The same from a terminal: `bgproc render --nats`, on the worker that is left.
    const cliDir = join(dir, "cli-frames");
    const cli = await bgprocCommand([
      "render",
      blendFile,
      "--frames",
      "1-4",
      "--chunk",
      "2",
      "--samples",
      "1",
      "--output",
      cliDir,
      "--nats",
      server.url,
      "--namespace",
      "farm",
      "--json",
    ]).output();
    equal(cli.code, 0, new TextDecoder().decode(cli.stderr));
    const printed = JSON.parse(new TextDecoder().decode(cli.stdout)) as { frames: { path: string }[] };
    deepStrictEqual(
      printed.frames.map((frame) => frame.path),
      [1, 2, 3, 4].map((n) => join(cliDir, `frame_000${n}.png`)),
    );
  } finally {
    for (const worker of workers) await worker[Symbol.asyncDispose](); // Also when an assertion failed.
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
