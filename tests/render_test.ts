/**
 * JobManager.render against real Blender: a 12-frame Cycles render in chunks of 4 on every backend (process, pool,
 * fork, NATS; tests/nats/render_test.ts kills a worker mid-render), a chunk's Blender killed for
 * real and retried, a dropped chunk that keeps the other frames, the video step, option checks and the CLI.
 */

import { jobDirName } from "../src/local/job/dir.ts";
import { deepStrictEqual, equal, match, ok, throws } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  chunkFrames,
  formatFrames,
  InvalidJobError,
  JobManager,
  parseFrames,
  RenderFailedError,
  type RenderOptions,
  type RenderProgress,
} from "../mod.ts";
import { BACKEND_NAMES, managerOn, startSharedCluster } from "./_backends.ts";
import { fixture, waitFor } from "./_helpers.ts";

await startSharedCluster(); // Before any test: its processes are no test's resources.

/** Make the test scene (tests/fixtures/render_scene.py) with this Blender, in `dir`. */
async function makeScene(manager: JobManager, dir: string): Promise<string> {
  const out = join(dir, "shot.blend");
  await manager.addJob({ script: fixture("render_scene.py"), passedData: { out } }).result();
  return out;
}

function pngs(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((entry) => entry.name).filter((name) => name.endsWith(".png")).sort();
}

const TWELVE = Array.from({ length: 12 }, (_, index) => `frame_${String(index + 1).padStart(4, "0")}.png`);

Deno.test("frames: the grammar, sorted and counted once, and its errors name the item", () => {
  deepStrictEqual(parseFrames("1-5"), [1, 2, 3, 4, 5]);
  deepStrictEqual(parseFrames("1-10,20,30-40x2"), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 32, 34, 36, 38, 40]);
  deepStrictEqual(parseFrames(" 9, 1 - 3 ,2"), [1, 2, 3, 9]);
  deepStrictEqual(parseFrames("0-9x4"), [0, 4, 8]);
  deepStrictEqual(parseFrames([9, 1, 5, 1]), [1, 5, 9]);
  deepStrictEqual(chunkFrames([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  equal(formatFrames([1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
  const cases: [string | number[], RegExp][] = [
    ["", /at least one frame/],
    [[], /at least one frame/],
    ["1-x", /"1-x", which is not N, A-B or A-BxSTEP/],
    ["5-1", /"5-1", a range that ends before it starts/],
    ["1-9x0", /"1-9x0", whose step/],
    ["1,,2", /"", which is not/],
    ["-3", /"-3", which is not/],
    ["1.5", /"1.5", which is not/],
    ["1-2000000", /frame 2000000, which is not a whole number from 0 to 1048574/],
    [[1, 2.5], /frame 2.5/],
  ];
  for (const [frames, message] of cases) {
    throws(() => parseFrames(frames), (error: unknown) => {
      ok(error instanceof InvalidJobError, String(error));
      equal(error.field, "frames");
      match(error.message, message);
      return true;
    });
  }
});

Deno.test("render: bad options are InvalidJobErrors naming the option, and nothing starts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using manager = new JobManager();
    const blendFile = await makeScene(manager, dir);
    manager.removeJob(manager.getJobNames()[0]!);
    const good: RenderOptions = { blendFile, frames: "1-4", outputDir: join(dir, "out") };
    const cases: [Partial<RenderOptions> & Record<string, unknown>, string, RegExp][] = [
      [{ frames: "4-1" }, "frames", /ends before it starts/],
      [{ chunk: 0 }, "chunk", /whole number from 1/],
      // A million chunk jobs would take the host's memory: at most 10,000 per render, and it says what would do.
      [
        { frames: "0-1048574", chunk: 1 },
        "chunk",
        /1,048,575 chunk jobs .* at most 10,000, so chunk must be at least 105/,
      ],
      [{ blendFile: join(dir, "none.blend") }, "blendFile", /does not exist/],
      [{ outputDir: blendFile }, "outputDir", /is not a folder/],
      [{ scene: "Nope" }, "scene", /names no scene .* \(it has 'Scene'\)/],
      [{ camera: "Nope" }, "camera", /names no object/],
      [{ resolution: [32] as unknown as [number, number] }, "resolution", /\[width, height\]/],
      [{ resolution: [2, 18] }, "resolution", /from 4 to 65536/],
      [{ samples: 1.5 }, "samples", /whole number/],
      [{ engine: "cycles; rm" }, "engine", /engine's identifier/],
      [{ video: { path: join(dir, "v.gif") } }, "video.path", /must end in \.mp4/],
      [{ video: { codec: "GIF" } }, "video.codec", /must be one of/],
      [{ video: { fps: 0 } }, "video.fps", /above 0/],
      [{ name: "../up" }, "name", /letters, digits/],
    ];
    for (const [change, field, message] of cases) {
      throws(() => manager.render({ ...good, ...change } as RenderOptions), (error: unknown) => {
        ok(error instanceof InvalidJobError, String(error));
        equal(error.field, field, error.message);
        match(error.message, message);
        return true;
      });
    }
    deepStrictEqual(manager.getJobNames(), []);
    ok(!existsSync(join(dir, "out")), "no output folder is made for a bad render");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const backend of BACKEND_NAMES) {
  Deno.test(`${backend}: render: 12 frames of Cycles in chunks of 4 give 12 files and one progress rising to 1`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      await using manager = await managerOn(backend, { maxWorkers: 2 });
      const blendFile = await makeScene(manager, dir);
      const outputDir = join(dir, "frames");
      const render = manager.render({ blendFile, frames: "1-12", chunk: 4, outputDir, samples: 2 });
      deepStrictEqual(render.chunks.map((chunk) => chunk.frames), [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]);
      const seen: RenderProgress[] = [];
      for await (const progress of render.progressUpdates()) seen.push(progress);
      const result = await render.result();
      deepStrictEqual(pngs(outputDir), TWELVE);
      deepStrictEqual(result.frames.map((frame) => frame.frame), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      deepStrictEqual(result.frames.map((frame) => frame.path), TWELVE.map((name) => join(outputDir, name)));
      deepStrictEqual(result.chunks.map((chunk) => chunk.attempts), [1, 1, 1]);
      equal(result.video, null);
      ok(seen.length >= 2, `progress came in steps: ${JSON.stringify(seen)}`);
      for (let index = 1; index < seen.length; index++) ok(seen[index]!.fraction > seen[index - 1]!.fraction);
      deepStrictEqual(seen.at(-1), { framesDone: 12, frameCount: 12, fraction: 1 });
      ok(
        seen.some((progress) => progress.framesDone > 0 && progress.framesDone < 12),
        "frames were counted one by one",
      );
      deepStrictEqual([...Deno.readDirSync(outputDir)].length, 12, "nothing but the frames in outputDir");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** The job directory of a job in the manager's work root. */
function jobDir(manager: JobManager, name: string): string | undefined {
  const jobs = join(manager.workRoot, "jobs");
  if (!existsSync(jobs)) return undefined;
  const suffix = jobDirName(0, name).slice("0".length); // "-<name, sanitized>-<hash>" after the serial
  const entry = [...Deno.readDirSync(jobs)].find((entry) => entry.name.endsWith(suffix));
  return entry === undefined ? undefined : join(jobs, entry.name);
}

Deno.test("render: a chunk whose Blender is killed mid-render is retried, and every frame is there", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using manager = new JobManager({ maxWorkers: 2, maxAttempts: 2 });
    const blendFile = await makeScene(manager, dir);
    const outputDir = join(dir, "frames");
    // More samples and pixels than the other tests: each frame takes long enough to be killed in the middle of.
    const render = manager.render({
      blendFile,
      frames: "1-12",
      chunk: 4,
      outputDir,
      samples: 64,
      resolution: [96, 54],
    });
    const victim = render.chunks[0]!;
    for await (const progress of victim.job.progressUpdates()) {
      if (progress > 0 && progress < 1) break; // A frame is written and the next one is rendering.
    }
    const runtime = join(jobDir(manager, victim.name)!, "runtime.json");
    const { pid } = JSON.parse(await Deno.readTextFile(runtime)) as { pid: number };
    equal(victim.job.attempts, 1);
    Deno.kill(pid, "SIGKILL"); // The chunk's Blender itself (the runtime records its pid), not bgproc's handle.
    const result = await render.result();
    deepStrictEqual(result.chunks.map((chunk) => chunk.attempts), [2, 1, 1]);
    deepStrictEqual(pngs(outputDir), TWELVE);
    equal(render.progress.fraction, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("render: a dropped chunk fails the render with its frames named, and the other frames stay", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using manager = new JobManager({ maxWorkers: 1 });
    const blendFile = await makeScene(manager, dir);
    const outputDir = join(dir, "frames");
    const render = manager.render({ blendFile, frames: [1, 2, 5, 6], chunk: 2, outputDir, samples: 1 });
    await waitFor(() => render.chunks[0]!.job.state === "ACTIVE", 60_000, "the first chunk to start");
    await render.chunks[1]!.job.kill(); // Still queued behind the first (one worker): dropped, never retried.
    const error = await render.result().then(() => undefined, (error: unknown) => error);
    ok(error instanceof RenderFailedError, String(error));
    equal(error.stage, "frames");
    deepStrictEqual(error.failedFrames, [5, 6]);
    deepStrictEqual(error.failedChunks.map((chunk) => [chunk.name, chunk.error.reason]), [[
      render.chunks[1]!.name,
      "killed",
    ]]);
    deepStrictEqual(error.renderedFrames.map((frame) => frame.frame), [1, 2]);
    match(error.message, /did not render frames 5-6: .*killed.*the 2 rendered frames are in/);
    deepStrictEqual(pngs(outputDir), ["frame_0001.png", "frame_0002.png"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("render: kill() kills every chunk, running and queued; the render fails with every chunk killed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using manager = new JobManager({ maxWorkers: 1 });
    const blendFile = await makeScene(manager, dir);
    const render = manager.render({ blendFile, frames: "1-6", chunk: 2, outputDir: join(dir, "frames"), samples: 1 });
    await waitFor(() => render.chunks[0]!.job.state === "ACTIVE", 60_000, "the first chunk to start");
    await render.kill();
    const error = await render.result().then(() => undefined, (error: unknown) => error);
    ok(error instanceof RenderFailedError, String(error));
    // The running chunk is killed (unless it finished in that moment), the queued ones never start.
    ok(["DROPPED", "COMPLETED"].includes(render.chunks[0]!.job.state), render.chunks[0]!.job.state);
    for (const chunk of render.chunks.slice(1)) equal(chunk.job.state, "DROPPED");
    deepStrictEqual(error.failedChunks.slice(-2).map((chunk) => chunk.error.reason), ["killed", "killed"]);
    equal(manager.counts.active + manager.counts.queued, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("render: without outputDir the frames are in the work root until remove(); the video step", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using manager = new JobManager({ maxWorkers: 2 });
    const blendFile = await makeScene(manager, dir);
    const render = manager.render({ blendFile, frames: "1-4", chunk: 2, samples: 1, video: { fps: 12 } });
    ok(render.outputDir.startsWith(manager.workRoot));
    const result = await render.result();
    equal(result.video, join(render.outputDir, "video.mp4"));
    deepStrictEqual(pngs(render.outputDir), TWELVE.slice(0, 4));
    // Blender reads the video back: four frames of the frames' size.
    const probe = manager.addJob({ script: fixture("video_probe.py"), passedData: { path: result.video! } });
    deepStrictEqual((await probe.result()).pythonData, { frames: 4, size: [32, 18] });
    ok(manager.getJob(`${render.name}-video`) !== undefined);
    await render.remove();
    ok(!existsSync(render.outputDir));
    equal(manager.getJob(render.chunks[0]!.name), undefined);
    equal(manager.getJob(`${render.name}-video`), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const cli = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

Deno.test("cli render: frames in chunks, one progress line per 10 %, the files on stdout; --help", async () => {
  const dir = await Deno.makeTempDir();
  try {
    {
      await using manager = new JobManager();
      await makeScene(manager, dir);
    }
    const run = (...args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", "--allow-write", "--allow-run", "--allow-env", cli, ...args],
        cwd: dir,
        stdin: "null",
        env: { ...Deno.env.toObject(), NO_COLOR: "1", INIT_CWD: dir },
      }).output();
    const output = await run(
      "render",
      "shot.blend",
      "--frames",
      "1-4",
      "--chunk",
      "2",
      "--output",
      "out",
      "--samples",
      "1",
    );
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    equal(output.code, 0, stderr);
    deepStrictEqual(stdout.trim().split("\n"), TWELVE.slice(0, 4).map((name) => join(dir, "out", name)));
    match(stderr, /shot\.blend 1-4: 100 % \(4\/4 frames\)\nshot\.blend 1-4: COMPLETED in/);
    match(stderr, new RegExp(`\\n4 frames in ${join(dir, "out")}/ \\(frame_0001\\.png … frame_0004\\.png\\)\\n`));
    const help = await run("render", "--help");
    match(new TextDecoder().decode(help.stdout), /--frames FRAMES .*\n[\s\S]*A-BxSTEP/);
    const bad = await run("render", "shot.blend", "--frames", "1-2", "--output", "out", "--resolution", "32");
    equal(bad.code, 2);
    match(new TextDecoder().decode(bad.stderr), /--resolution takes WIDTHxHEIGHT/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
