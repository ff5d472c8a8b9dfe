/**
 * The dashboard's Farm view over a real NATS cluster, in real headless Chromium under the dashboard's own Content
 * Security Policy: a nats-server, two real `bgproc worker` processes and a service whose `JobManager` runs over them.
 * A render of 6 frames (a chunk job each) from `POST /renders`, one chunk cancelled while queued: the Farm view
 * (reached with the keyboard) lists both workers with their tags, GPUs and counts, and the render as one row whose
 * frame grid shows the dropped frame; "Retry dropped" in the job list runs that chunk again, and the row ends with
 * every frame done and the last frame's thumbnail. `GET /workers`, `GET /renders` and
 * `GET /renders/:name/frames/:n` are checked over HTTP (paging, 404s, a symlink not followed); a worker paused with
 * SIGSTOP is marked stale. A service over a local manager lists this machine alone. Screenshots go to .test-results/.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobManager } from "../mod.ts";
import { createService, type Service } from "../src/service/mod.ts";
import { fixture, waitFor } from "./_helpers.ts";
import { startNatsServer, startWorker, type WorkerProcess } from "./nats/_server.ts";
import { BROWSER_TEST, CHROMIUM, loadChromium, type Loose } from "./_chromium.ts";

const NAMESPACE = "farm-view";
const FRAMES = 6;

/** A request to the service: its status, content type and body (JSON when it is JSON). */
type Call = (method: string, path: string, body?: unknown) => Promise<{ status: number; type: string; body: Loose }>;

/** Requests to the service at `base` over HTTP. */
function caller(base: string): Call {
  return async (method, path, body) => {
    const response = await fetch(`${base}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
    });
    const type = response.headers.get("content-type") ?? "";
    return {
      status: response.status,
      type,
      body: type.startsWith("application/json") ? await response.json() : await response.bytes(),
    };
  };
}

/** The worker's id, from its `ready` line. */
function idOf(worker: WorkerProcess): string {
  return worker.output.find((line) => line.includes(" ready "))!.split(" ")[2]!;
}

/** The dashboard at 1280×800 under its real policy, with its errors collected in `pageErrors`. */
async function openDashboard(browser: Loose, url: string, pageErrors: string[]): Promise<Loose> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (error: Error) => pageErrors.push(error.message));
  page.on("console", (message: Loose) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      pageErrors.push(message.text());
    }
  });
  await page.goto(url);
  await page.locator("#health-text:text-is('Blender OK')").waitFor();
  return page;
}

/** From the Jobs tab to the Farm tab (or back) with the arrow keys, as the tabs pattern has it. */
async function switchView(page: Loose, to: "jobs" | "farm"): Promise<void> {
  const from = to === "farm" ? "jobs" : "farm";
  await page.focus(`#tab-${from}`);
  await page.keyboard.press(to === "farm" ? "ArrowRight" : "ArrowLeft");
  await page.locator(`#${to}-section:not([hidden])`).waitFor();
  ok(await page.locator(`#${from}-section`).isHidden());
  equal(await page.locator(`#tab-${to}`).getAttribute("aria-selected"), "true");
  equal(await page.locator(`#tab-${to}:focus`).count(), 1, "the shown tab has the focus");
}

/** The workers table shows both workers, with what `GET /workers` says of each. */
async function checkWorkers(page: Loose, call: Call, ids: string[]): Promise<void> {
  // The counts come with the workers' advertisements (every second): wait for the 6 completed chunks to show.
  let answer: Loose;
  const deadline = Date.now() + 15_000;
  do {
    await new Promise((resolve) => setTimeout(resolve, 200));
    answer = (await call("GET", "/workers")).body;
  } while (
    answer.workers.reduce((sum: number, worker: Loose) => sum + (worker.completed ?? 0), 0) < FRAMES &&
    Date.now() < deadline
  );
  equal(answer.backend, "nats");
  deepStrictEqual(answer.workers.map((worker: Loose) => worker.name).sort(), [...ids].sort());
  equal(answer.workers.reduce((sum: number, worker: Loose) => sum + worker.completed, 0), FRAMES);
  for (const worker of answer.workers) {
    equal(worker.stale, false);
    equal(worker.slots, 1);
    equal(worker.mode, "fork");
    match(worker.heartbeatAt, /^\d{4}-\d\d-\d\dT/);
    const row = page.locator(`#workers-table tr[data-worker='${worker.name}']`);
    await row.locator(`td.done:text-is("${worker.completed}")`).waitFor({ timeout: 10_000 });
    equal(await row.locator("td.failed").textContent(), String(worker.failed));
    equal(await row.locator("td[data-label=Machine]").textContent(), worker.machine);
    equal(await row.locator("td[data-label=Blender]").textContent(), worker.blenderVersion);
  }
  const blue = answer.workers.find((worker: Loose) => worker.tags.includes("blue"));
  const green = answer.workers.find((worker: Loose) => worker.tags.includes("green"));
  deepStrictEqual([blue.gpus, green.gpus], [[], ["0"]]);
  equal(await page.locator(`tr[data-worker='${green.name}'] td[data-label=GPUs]`).textContent(), "0");
  equal(await page.locator(`tr[data-worker='${green.name}'] td[data-label=Tags]`).textContent(), "gpu, green");
  equal(await page.locator("#workers-count").textContent(), "2");
}

/** The render's row: `done` of 6 frames done, the others dropped, every cell labelled. */
async function checkRenderRow(page: Loose, done: number, state: string): Promise<void> {
  const row = page.locator("#renders-table tr[data-render='render-1']");
  await row.locator(`.frames-done:text-is("${done} / ${FRAMES} done")`).waitFor({ timeout: 60_000 });
  await row.locator(`.state:text-is("${state}")`).waitFor();
  equal(await row.locator(".blend").textContent(), "shot.blend");
  equal(await row.locator(".range").textContent(), `frames 1-${FRAMES} in ${FRAMES} jobs`);
  equal(await row.locator(".cell").count(), FRAMES);
  equal(await row.locator(".cell.done").count(), done);
  for (let frame = 1; frame <= FRAMES; frame++) {
    const cell = row.locator(".cell").nth(frame - 1);
    const word = frame === FRAMES && done < FRAMES ? "dropped" : "done";
    equal(await cell.getAttribute("aria-label"), `frame ${frame}: ${word}`);
    equal(await cell.getAttribute("title"), `frame ${frame}: ${word}`);
    equal(await cell.getAttribute("role"), "img");
  }
  equal(
    await row.locator(".frame-grid").getAttribute("aria-label"),
    `Frames of render-1: ${done} of ${FRAMES} done`,
  );
  // The last finished frame's image, loaded through GET /renders/:name/frames/:n.
  await page.waitForFunction(`(() => {
    const image = document.querySelector("tr[data-render='render-1'] td.thumb img");
    return image !== null && image.complete && image.naturalWidth === 32;
  })()`);
}

/** `GET /renders` and `GET /renders/:name/frames/:n` over HTTP: the row, paging, and what is refused. */
async function checkRendersApi(call: Call, outputsDir: string): Promise<void> {
  const page = (await call("GET", "/renders")).body;
  equal(page.total, 1);
  deepStrictEqual([page.offset, page.limit], [0, 20]);
  const [render] = page.renders;
  deepStrictEqual(
    [render.name, render.blend, render.frames, render.frameCount, render.framesDone, render.state, render.chunks],
    ["render-1", "shot.blend", "1-6", FRAMES, FRAMES, "completed", FRAMES],
  );
  deepStrictEqual(
    render.grid,
    Array.from({ length: FRAMES }, (_, i) => ({ first: i + 1, last: i + 1, count: 1, state: "done" })),
  );
  deepStrictEqual(render.lastFrame, { frame: FRAMES, url: `renders/render-1/frames/${FRAMES}` });
  equal((await call("GET", "/renders?offset=1&limit=5")).body.renders.length, 0);
  for (const query of ["limit=0", "limit=101", "offset=-1", "offset=abc"]) {
    const answer = await call("GET", `/renders?${query}`);
    equal(answer.status, 400, query);
    equal(answer.body.error, "bad paging");
  }
  const image = await call("GET", "/renders/render-1/frames/1");
  deepStrictEqual([image.status, image.type], [200, "image/png"]);
  for (const path of ["render-1/frames/7", "render-1/frames/01x", "render-2/frames/1", "..%2Frender-1/frames/1"]) {
    const answer = await call("GET", `/renders/${path}`);
    deepStrictEqual([answer.status, answer.body.error], [404, "no such frame"], path);
  }
  // A frame's file replaced by a symlink (to an image of the same folder, even) is not followed.
  const frame2 = join(outputsDir, "render-1", "frame_0002.png");
  await Deno.remove(frame2);
  await Deno.symlink(join(outputsDir, "render-1", "frame_0001.png"), frame2);
  equal((await call("GET", "/renders/render-1/frames/2")).status, 404);
  equal((await call("POST", "/workers", {})).status, 405);
}

/** A worker paused (SIGSTOP) stops heartbeating: marked stale in `GET /workers` and the table, before it is gone. */
async function checkStale(page: Loose, call: Call, worker: WorkerProcess): Promise<void> {
  const id = idOf(worker);
  Deno.kill(worker.pid, "SIGSTOP");
  try {
    let seen: Loose;
    const deadline = Date.now() + 5_000;
    while (seen?.stale !== true && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      seen = (await call("GET", "/workers")).body.workers.find((one: Loose) => one.name === id);
    }
    equal(seen?.stale, true, "the paused worker is listed as stale");
    ok(seen.heartbeatAgeMs > 2_500);
    // The tab asks again at once (it polls every 2 s): the row must show it before the manager forgets the worker.
    await page.click("#tab-farm");
    const row = page.locator(`#workers-table tr.stale[data-worker='${id}']`);
    await row.waitFor({ timeout: 2_000 });
    match(await row.locator("td.heartbeat").textContent(), /s ago stale$/);
    await page.screenshot({ path: ".test-results/dashboard-farm-stale.png" });
  } finally {
    Deno.kill(worker.pid, "SIGCONT");
  }
}

/** A local manager's service answers `GET /workers` with this machine alone, and the attempts it saw end. */
async function checkLocalMachine(manager: JobManager, service: Service): Promise<void> {
  const get = async (path: string) => await (await service.fetch(new Request(`http://localhost${path}`))).json();
  let answer = await get("/workers");
  for (let i = 0; i < 50 && answer.workers[0].completed === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20)); // The service counts from the event stream.
    answer = await get("/workers");
  }
  equal(answer.backend, "local");
  const [machine, ...more] = answer.workers;
  deepStrictEqual(more, []);
  deepStrictEqual(
    [machine.name, machine.machine, machine.pid, machine.slots, machine.mode, machine.gpus, machine.stale],
    ["local", Deno.hostname(), Deno.pid, 1, manager.mode, null, false],
  );
  deepStrictEqual([machine.completed, machine.failed, machine.running], [1, 0, []]);
  equal(machine.blenderVersion, await manager.blenderVersion());
  deepStrictEqual(await get("/renders"), { total: 0, offset: 0, limit: 20, renders: [] });
}

Deno.test({
  name: "dashboard farm: two NATS workers and a render's frame grid in the Farm view; retry dropped runs its chunk",
  ...BROWSER_TEST,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "bgproc-dashboard-farm-" });
    const [scriptsDir, blendsDir, outputsDir] = ["scripts", "blends", "outputs"].map((name) => join(root, name));
    for (const dir of [scriptsDir!, blendsDir!, outputsDir!]) await Deno.mkdir(dir);
    await using server = await startNatsServer();
    const args = ["--namespace", NAMESPACE, "--workers", "1", "--mode", "fork"];
    const makeScene = (async () => {
      await using local = new JobManager({ maxWorkers: 1 });
      await using service = createService({ manager: local, scriptsDir: scriptsDir! });
      const passedData = { out: join(blendsDir!, "shot.blend") };
      await local.addJob({ script: fixture("render_scene.py"), passedData }).result();
      await checkLocalMachine(local, service);
    })();
    const [blue, green] = await Promise.all([
      startWorker(server.url, [...args, "--tags", "blue"]),
      startWorker(server.url, [...args, "--tags", "green,gpu", "--gpus", "0"]),
      makeScene,
    ]);
    await using manager = new JobManager({ nats: { servers: server.url, namespace: NAMESPACE } });
    await using service = createService({
      manager,
      scriptsDir: scriptsDir!,
      outputsDir: outputsDir!,
      blendsDir: blendsDir!,
    });
    const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, service.fetch);
    const base = `http://127.0.0.1:${http.addr.port}`;
    const call = caller(base);
    const browser = await (await loadChromium()).launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    try {
      await manager.ready();
      await waitFor(() => manager.health.status === "ok", 10_000, "the cluster's workers");
      await Deno.mkdir(".test-results", { recursive: true });
      const pageErrors: string[] = [];
      const page = await openDashboard(browser, `${base}/`, pageErrors);
      await switchView(page, "farm");
      await page.locator("#renders-empty:text-is('No renders yet.')").waitFor();

      // Six chunk jobs of one frame each; the last is cancelled while it waits behind the others.
      const started = await call("POST", "/renders", { blend: "shot.blend", frames: `1-${FRAMES}`, chunk: 1 });
      equal(started.status, 201, JSON.stringify(started.body));
      equal((await call("POST", `/jobs/render-1-frame-${FRAMES}/cancel`)).status, 200);
      await checkRenderRow(page, FRAMES - 1, "dropped");
      equal(await page.locator("tr[data-render='render-1'] .cell.dropped").count(), 1);
      await page.screenshot({ path: ".test-results/dashboard-farm-dropped.png" });

      // "Retry dropped" in the job list runs the render's chunk again: its row ends complete.
      await switchView(page, "jobs");
      await page.locator("#retry-dropped:not([disabled])").click();
      await switchView(page, "farm");
      await checkRenderRow(page, FRAMES, "completed");
      // The last frame follows the service's event stream, which may trail the job's state by a refresh (every 2 s).
      await page.locator("tr[data-render='render-1'] td.thumb img[alt='render-1, frame 6']").waitFor({
        timeout: 10_000,
      });
      equal(await page.locator("#alert").isHidden(), true, "the retry was not refused");
      await checkWorkers(page, call, [idOf(blue), idOf(green)]);
      await page.screenshot({ path: ".test-results/dashboard-farm.png" });
      await page.setViewportSize({ width: 390, height: 844 });
      const farm = await page.locator("#farm-section").boundingBox();
      ok(farm.x >= 0 && farm.x + farm.width <= 390.5, "the Farm view fits a phone's width");
      await page.screenshot({ path: ".test-results/dashboard-farm-phone.png", fullPage: true });
      await page.setViewportSize({ width: 1280, height: 900 });

      await checkRendersApi(call, outputsDir!);
      await checkStale(page, call, green);
      deepStrictEqual(pageErrors, []);
      for (const kind of ["", "-dropped", "-phone", "-stale"]) {
        const name = `dashboard-farm${kind}.png`;
        ok(existsSync(join(".test-results", name)));
      }
    } finally {
      await browser.close();
      await service.close();
      await http.shutdown();
      await Promise.all([blue[Symbol.asyncDispose](), green[Symbol.asyncDispose]()]);
      await Deno.remove(root, { recursive: true });
    }
  },
});
