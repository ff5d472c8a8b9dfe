/**
 * Renders from the service: `blendsDir`'s .blend files listed, `POST /renders` renders one in chunk jobs into
 * `outputsDir/<render>/`, bad requests get clear 400s, and the dashboard's render form starts one (issue 25).
 */

import { deepStrictEqual, equal, match, ok, throws } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobManager } from "../mod.ts";
import { createService } from "../src/service/mod.ts";
import { fixture } from "./_helpers.ts";

const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
// deno-lint-ignore no-explicit-any
type Loose = any;

Deno.test({
  name: "service renders: POST /renders renders a blendsDir file in chunk jobs into outputsDir/<name>/; the form too",
  // playwright-core's Node-compat processes and sockets are counted against the test; all are closed below.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "bgproc-service-render-" });
    const [scriptsDir, blendsDir, outputsDir] = ["scripts", "blends", "outputs"].map((name) => join(root, name));
    for (const dir of [scriptsDir!, blendsDir!, outputsDir!]) await Deno.mkdir(dir);
    await using manager = new JobManager({ maxWorkers: 2 });
    await manager.addJob({
      script: fixture("make_render_scene.py"),
      passedData: { path: join(blendsDir!, "shot.blend") },
    })
      .result();
    await Deno.writeTextFile(join(blendsDir!, "notes.txt"), "not a blend file");
    throws(() => createService({ manager, scriptsDir: scriptsDir!, blendsDir: blendsDir! }), /needs 'outputsDir'/);
    await using service = createService({
      manager,
      scriptsDir: scriptsDir!,
      outputsDir: outputsDir!,
      blendsDir: blendsDir!,
    });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, service.fetch);
    const base = `http://127.0.0.1:${server.addr.port}`;
    const call = async (method: string, path: string, body?: unknown) => {
      const response = await service.fetch(
        new Request(`${base}${path}`, {
          method,
          ...(body === undefined
            ? {}
            : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
        }),
      );
      return { status: response.status, body: await response.json() };
    };
    try {
      deepStrictEqual((await call("GET", "/blends")).body, ["shot.blend"]);
      for (
        const [body, status, pattern] of [
          [{ blend: "shot.blend", frame: "1-2" }, 400, /Unknown field 'frame'; did you mean 'frames'\?/],
          [{ blend: "notes.txt", frames: "1-2" }, 400, /'blend' must be the file name of a \.blend file/],
          [{ blend: "other.blend", frames: "1-2" }, 400, /There is no \.blend file 'other\.blend'/],
          [{ blend: "shot.blend", frames: "2-1" }, 400, /frames/],
          [{ blend: "shot.blend", frames: "1-2", name: "../escape" }, 400, /name/],
          [{ blend: "shot.blend", frames: "1-1000", chunk: 1 }, 429, /1000 chunk jobs would pass the 100/],
        ] as const
      ) {
        const answer = await call("POST", "/renders", body);
        equal(answer.status, status, JSON.stringify(answer.body));
        match(`${answer.body.error}: ${answer.body.detail}`, pattern);
      }
      ok(!existsSync(join(root, "escape")));

      const started = await call("POST", "/renders", { blend: "shot.blend", frames: "1-4", chunk: 2 });
      equal(started.status, 201, JSON.stringify(started.body));
      deepStrictEqual(started.body, {
        name: "render-1",
        jobs: ["render-1-frames-1-2", "render-1-frames-3-4"],
        frames: 4,
        outputs: "render-1/",
      });
      // The chunk jobs are ordinary jobs of the service.
      deepStrictEqual(
        (await call("GET", "/jobs")).body.map((job: { name: string }) => job.name).filter((name: string) =>
          name.startsWith("render-1")
        ),
        ["render-1-frames-1-2", "render-1-frames-3-4"],
      );
      for (const name of started.body.jobs) await manager.getJob(name)!.result();
      deepStrictEqual(
        [...Deno.readDirSync(join(outputsDir!, "render-1"))].map((entry) => entry.name).sort(),
        ["frame_0001.png", "frame_0002.png", "frame_0003.png", "frame_0004.png"],
      );

      if (!existsSync(CHROMIUM)) return;
      const specifier = "playwright-core"; // Without its types: see dashboard_test.ts.
      const chromium: Loose = (await import(specifier)).chromium;
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox"] });
      try {
        const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
        await page.goto(`${base}/`);
        await page.locator("#render:not([hidden])").waitFor();
        equal(await page.locator("#blend").inputValue(), "shot.blend");
        // With no scripts in the folder the job editor holds an empty object, not "undefined".
        await page.waitForFunction(`document.querySelector("#data").value === "{}"`);
        equal(await page.locator("#data-error").textContent(), "");
        await page.fill("#frames", "5-6");
        await page.fill("#chunk", "1");
        await page.click("#render-button");
        await page.locator("#render-result:has-text('render-2: 2 frames in 2 jobs, into render-2/')").waitFor();
        await page.locator("tr[data-job='render-2-frame-6'] .state.COMPLETED").waitFor({ timeout: 120_000 });
        await page.locator("tr[data-job='render-2-frame-5'] .state.COMPLETED").waitFor({ timeout: 120_000 });
        await Deno.mkdir(".test-results", { recursive: true });
        await page.screenshot({ path: ".test-results/dashboard-render.png" });
        ok(existsSync(join(outputsDir!, "render-2", "frame_0006.png")));
      } finally {
        await browser.close();
      }
    } finally {
      await service.close();
      await server.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});
