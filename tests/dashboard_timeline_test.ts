/**
 * The job details' timeline in real headless Chromium, under the dashboard's own Content Security Policy: a
 * completed job, a job whose script raises on both its attempts, and a job cancelled before it started, each with
 * its queue wait, its attempts coloured by outcome and their phases on one time axis, and the table of phase
 * durations; the service's `timings` with no server path. Screenshots go to .test-results/.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobManager } from "../mod.ts";
import { createService } from "../src/service/mod.ts";
import type { JobTimings } from "../src/timings.ts";
import { fixture } from "./_helpers.ts";
import { BROWSER_TEST, CHROMIUM, loadChromium, type Loose } from "./_chromium.ts";

interface Box {
  x: number;
  width: number;
}

/** The on-screen box of the only element `locator` finds. */
async function box(locator: Loose): Promise<Box> {
  const found = await locator.boundingBox();
  ok(found !== null, "the element is not on screen");
  return found;
}

/** Opens a job's details and waits for its timeline (shown once the job has ended and its details are loaded). */
async function openTimeline(page: Loose, name: string, state: string): Promise<Loose> {
  await page.locator(`tr[data-job='${name}'] .state:has-text('${state}')`).waitFor({ timeout: 60_000 });
  await page.click(`tr[data-job='${name}'] .name button`);
  await page.locator(`#detail-title:text-is("Job ${name}")`).waitFor();
  const timeline = page.locator("#detail-timeline:not([hidden])");
  await timeline.waitFor({ timeout: 10_000 });
  return timeline;
}

/** Checks one attempt's row: its label, and its phases (`start` and `script` among them) in order inside its bar. */
async function checkAttempt(row: Loose, attempt: number, outcome: string): Promise<void> {
  equal(await row.getAttribute("data-outcome"), outcome);
  match(
    await row.locator(".tl-label").textContent() ?? "",
    new RegExp(`^attempt ${attempt}: ${outcome} · [\\d.,]+ ms$`),
  );
  const segments = row.locator(".tl-seg");
  const phases: string[] = [];
  for (let i = 0; i < await segments.count(); i++) phases.push(await segments.nth(i).getAttribute("data-phase"));
  ok(phases.includes("start") && phases.includes("script"), `attempt ${attempt}'s phases: ${phases.join(", ")}`);
  ok(phases.indexOf("start") < phases.indexOf("script"), "start comes before script");
  const script = row.locator(".tl-seg[data-phase=script]");
  match(await script.getAttribute("title") ?? "", new RegExp(`^script [\\d.,]+ ms \\(attempt ${attempt}\\)$`));
  // At their real times: each phase lies within its attempt's bar (give or take a sliver's minimum width).
  const whole = await box(row.locator(".tl-bar"));
  for (const phase of ["start", "script"]) {
    const segment = await box(row.locator(`.tl-seg[data-phase=${phase}]`));
    ok(segment.x >= whole.x - 1 && segment.x + segment.width <= whole.x + whole.width + 4, `${phase} is outside`);
  }
  ok((await box(row.locator(".tl-seg[data-phase=start]"))).x <= (await box(script)).x);
}

/** The completed job: its queue wait, one green attempt with its phases, the axis and the phase table. */
async function checkCompleted(page: Loose): Promise<void> {
  const timeline = await openTimeline(page, "ok", "COMPLETED");
  equal(await timeline.locator(".tl-row.queue").count(), 1);
  match(await timeline.locator(".tl-row.queue .tl-label").textContent() ?? "", /^queue wait · [\d.,]+ ms$/);
  match(await timeline.locator(".tl-row.queue .tl-bar").getAttribute("title") ?? "", /^queue wait: [\d.,]+ ms$/);
  const attempts = timeline.locator(".tl-row.attempt");
  equal(await attempts.count(), 1);
  match(await attempts.first().getAttribute("class") ?? "", /\bok\b/); // Green.
  await checkAttempt(attempts.first(), 1, "completed");
  deepStrictEqual(await timeline.locator(".tl-table thead th").allTextContents(), ["Phase", "attempt 1"]);
  for (const phase of ["start", "script"]) {
    match(await timeline.locator(`.tl-table tr[data-phase=${phase}] td`).textContent() ?? "", /^[\d.,]+ ms$/);
  }
  match(await timeline.locator(".tl-axis").textContent() ?? "", /^0 ms.*ms/);
  match(await page.locator("#timeline-total").textContent() ?? "", /^\([\d.,]+ ms from added to ended\)$/);
  await page.screenshot({ path: ".test-results/dashboard-timeline.png" });
}

/** The job whose script raised on both its attempts: two red attempts, one after the other on the same axis. */
async function checkRaisedTwice(page: Loose): Promise<void> {
  const timeline = await openTimeline(page, "bad", "DROPPED (error)");
  const attempts = timeline.locator(".tl-row.attempt");
  equal(await attempts.count(), 2);
  await checkAttempt(attempts.nth(0), 1, "error");
  await checkAttempt(attempts.nth(1), 2, "error");
  const first = await box(attempts.nth(0).locator(".tl-bar"));
  const second = await box(attempts.nth(1).locator(".tl-bar"));
  ok(first.x + first.width <= second.x + 1, "the second attempt starts after the first ended");
  const heads = await timeline.locator(".tl-table thead th").allTextContents();
  deepStrictEqual(heads, ["Phase", "attempt 1", "attempt 2"]);
  await page.screenshot({ path: ".test-results/dashboard-timeline-dropped.png" });
  await timeline.screenshot({ path: ".test-results/dashboard-timeline-chart.png" });
}

/** Cancelled in the queue: its whole time was queue wait, with no attempt and no phase table. */
async function checkNeverStarted(page: Loose): Promise<void> {
  const timeline = await openTimeline(page, "never", "DROPPED (killed)");
  equal(await timeline.locator(".tl-row.attempt").count(), 0);
  match(await timeline.locator(".tl-row.queue .tl-label").textContent() ?? "", /no attempt started/);
  ok(await timeline.locator(".tl-table").isHidden());
  await timeline.screenshot({ path: ".test-results/dashboard-timeline-queued.png" });
}

/** The service's details: every ended job's timings, with no server path in what ran each attempt. */
async function checkDetails(call: (method: string, path: string) => Promise<unknown>, paths: string[]): Promise<void> {
  const bad = await call("GET", "/jobs/bad") as { timings: JobTimings };
  deepStrictEqual(bad.timings.attempts.map((attempt) => attempt.outcome), ["error", "error"]);
  for (const attempt of bad.timings.attempts) {
    match(attempt.ranOn, /^blender /);
    ok(paths.every((path) => !attempt.ranOn.includes(path)), attempt.ranOn);
  }
  const completed = await call("GET", "/jobs/ok") as { timings: JobTimings };
  equal(completed.timings.attempts[0]?.outcome, "completed");
  deepStrictEqual((await call("GET", "/jobs/never") as { timings: JobTimings }).timings.attempts, []);
}

Deno.test({
  name: "dashboard timeline: queue wait, attempts by outcome with their phases on one time axis, phase table",
  ...BROWSER_TEST,
  async fn() {
    const scriptsDir = await Deno.makeTempDir({ prefix: "bgproc-dashboard-timeline-" });
    for (const name of ["echo.py", "raise.py"]) await Deno.copyFile(fixture(name), join(scriptsDir, name));
    // Process mode: each attempt starts its own Blender, so `start` is a real span; the raising job gets 2 attempts.
    await using manager = new JobManager({ maxWorkers: 2, mode: "process", maxAttempts: 2, retry: { delayMs: 50 } });
    await using service = createService({ manager, scriptsDir });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, service.fetch);
    const base = `http://127.0.0.1:${server.addr.port}`;
    const call = async (method: string, path: string, body?: unknown) => {
      const response = await fetch(`${base}${path}`, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
      });
      const data = await response.json();
      ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
      return data;
    };
    const chromium = await loadChromium();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    try {
      // Two jobs take both workers; the third waits in the queue and is cancelled there, before any attempt.
      await call("POST", "/jobs", { name: "ok", script: "echo.py" });
      await call("POST", "/jobs", { name: "bad", script: "raise.py" });
      await call("POST", "/jobs", { name: "never", script: "echo.py" });
      await call("POST", "/jobs/never/cancel");
      await Deno.mkdir(".test-results", { recursive: true });
      // No bypassCSP: the timeline must place its bars under the dashboard's real policy (no inline styles).
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const pageErrors: string[] = [];
      page.on("pageerror", (error: Error) => pageErrors.push(error.message));
      // A blocked inline style is a console error; 404s are not ours (GET /blends without a blends folder).
      page.on("console", (message: Loose) => {
        if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
          pageErrors.push(message.text());
        }
      });
      await page.goto(`${base}/`);

      await checkCompleted(page);
      await checkRaisedTwice(page);
      await checkNeverStarted(page);
      await checkDetails(call, [manager.workRoot, scriptsDir]);
      deepStrictEqual(pageErrors, []);
      const shots = ["", "-dropped", "-chart", "-queued"].map((suffix) => `dashboard-timeline${suffix}.png`);
      for (const name of shots) {
        ok(existsSync(join(".test-results", name)));
      }
    } finally {
      await browser.close();
      await service.close();
      await server.shutdown();
      await Deno.remove(scriptsDir, { recursive: true });
    }
  },
});
