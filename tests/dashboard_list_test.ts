/**
 * The dashboard's job list with 1,000 jobs in real headless Chromium: "Connecting…" until the first snapshot,
 * newest first, sorting by column, pages of 50 rows (only those in the DOM), progress percentage and ETA,
 * started-at, a dropped job's bar that never reads as done, and bulk retry of dropped jobs (issue 25).
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { JobManager } from "../mod.ts";
import { createService } from "../src/service/mod.ts";
import { fixture } from "./_helpers.ts";
import { BROWSER_TEST, CHROMIUM, loadChromium, type Loose } from "./_chromium.ts";

/** Fails on its first run (leaving a marker), completes on the next: what a bulk retry should fix. */
const FAIL_ONCE = `import os
marker = passed_data["marker"]
if not os.path.exists(marker):
    open(marker, "w").close()
    raise RuntimeError("the first attempt fails")
python_data = {"second": True}
`;

/** Reaches 100 % (a render's progress can), then fails. */
const DONE_THEN_FAIL = `update_job_progress(1.0)
raise RuntimeError("failed after the render")
`;

/** Waits until a state's count in the filter bar reads `count` (a locator: no page-side `eval`). */
function countReaches(page: Loose, state: string, count: number, timeout: number): Promise<void> {
  return page.locator(`[data-count=${state}]:text-is("${count}")`).waitFor({ timeout });
}

/**
 * Waits until the passed-data editor holds `expected`. Polled from Deno: Playwright evaluates a
 * `waitForFunction` predicate with `eval`, which the dashboard's Content Security Policy forbids.
 */
async function dataBecomes(page: Loose, expected: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  let value = await page.locator("#data").inputValue();
  while (value !== expected) {
    if (Date.now() > deadline) throw new Error(`#data is ${JSON.stringify(value)}, expected ${expected}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    value = await page.locator("#data").inputValue();
  }
}

const JOBS = 1000;
/** Jobs 10, 20, ... 990 fail once. */
const FAIL_ONCE_JOBS = Math.floor((JOBS - 2) / 10);

Deno.test({
  name: "dashboard with 1,000 jobs: connecting, newest first, sorting, paging, ETA, dropped bars, bulk retry",
  ...BROWSER_TEST,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "bgproc-dashboard-list-" });
    const scriptsDir = join(root, "scripts");
    await Deno.mkdir(join(root, "markers"), { recursive: true });
    await Deno.mkdir(scriptsDir);
    await Deno.writeTextFile(join(scriptsDir, "fail_once.py"), FAIL_ONCE);
    await Deno.writeTextFile(join(scriptsDir, "done_then_fail.py"), DONE_THEN_FAIL);
    for (const name of ["echo.py", "sleep.py"]) await Deno.copyFile(fixture(name), join(scriptsDir, name));
    await using manager = new JobManager({ maxWorkers: 2, mode: "pool" });
    await using service = createService({ manager, scriptsDir, maxQueued: 2 * JOBS, keepFinished: 2 * JOBS });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, service.fetch);
    const add = async (body: Record<string, unknown>) => {
      const response = await service.fetch(
        new Request(`http://127.0.0.1:${server.addr.port}/jobs`, {
          method: "POST",
          body: JSON.stringify(body),
          headers: { "content-type": "application/json", origin: `http://127.0.0.1:${server.addr.port}` },
        }),
      );
      equal(response.status, 201, await response.clone().text());
      return (await response.json()).name as string;
    };
    const chromium = await loadChromium();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    try {
      await Deno.mkdir(".test-results", { recursive: true });
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, bypassCSP: true });
      const pageErrors: string[] = [];
      page.on("pageerror", (error: Error) => pageErrors.push(error.message));
      // Hold the event stream back: until its snapshot arrives the page says it is connecting, not "No jobs yet".
      let release = () => {};
      const held = new Promise<void>((resolve) => release = resolve);
      await page.route("**/events", async (route: Loose) => {
        await held;
        await route.continue();
      });
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      equal(await page.locator("#empty").textContent(), "Connecting…");
      ok(await page.locator("#empty").isVisible());
      release();
      await page.locator("#empty:has-text('No jobs yet.')").waitFor();

      // 1,000 jobs: every tenth fails once, one sleeps (ACTIVE at 10 %), one fails after reaching 100 %.
      const started = Date.now();
      for (let i = 1; i <= JOBS - 2; i++) {
        await add(
          i % 10 === 0
            ? { script: "fail_once.py", passedData: { marker: join(root, "markers", String(i)) } }
            : { script: "echo.py" },
        );
      }
      await add({ script: "done_then_fail.py", name: "render-failed" });
      await add({ script: "sleep.py", name: "sleeper", passedData: { seconds: 600 } });
      // Two workers: the last echo jobs can complete while a fail-once job beside them is still running, so
      // wait for both counts before reading the page.
      await countReaches(page, "COMPLETED", JOBS - 2 - FAIL_ONCE_JOBS, 600_000);
      await countReaches(page, "DROPPED", FAIL_ONCE_JOBS + 1, 60_000);
      const ranMs = Date.now() - started;
      await page.locator("tr[data-job='sleeper'] .pct:has-text('ETA')").waitFor({ timeout: 60_000 });

      // Newest first, one page of 50 rows in the DOM.
      equal(await page.locator("[data-count=all]").textContent(), String(JOBS));
      equal(await page.locator("#jobs tbody tr").count(), 50);
      equal(await page.locator("#page-info").textContent(), `1–50 of ${JOBS.toLocaleString("en")}`);
      // The list redraws at the next animation frame: wait for it after a click.
      const drawn = () =>
        page.evaluate("new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))");
      const names = () =>
        page.locator("#jobs tbody tr").evaluateAll((rows: { dataset: { job: string } }[]) =>
          rows.map((row) => row.dataset.job)
        );
      deepStrictEqual((await names()).slice(0, 3), ["sleeper", "render-failed", `job-${JOBS - 2}`]);
      const sleeper = page.locator("tr[data-job='sleeper']");
      match(await sleeper.locator(".pct").textContent() ?? "", /^10 % · ETA \d+:\d\d$/);
      match(await sleeper.locator(".started").textContent() ?? "", /\d:\d\d/);
      // A job dropped after reaching 100 % says where it stopped, in a muted bar, not a full red one.
      const failed = page.locator("tr[data-job='render-failed']");
      equal(await failed.locator(".pct").textContent(), "stopped at 100 %");
      const accent = await page.evaluate(
        `getComputedStyle(document.querySelector("tr[data-job='render-failed'] progress")).accentColor`,
      ) as string;
      ok(!/207, 34, 46/.test(accent), `a dropped job's bar is red: ${accent}`);
      await page.screenshot({ path: ".test-results/dashboard-1000.png" });

      // Sorting by a column, timed from the click to the rows on screen.
      const sortMs = await page.evaluate(`(async () => {
        const start = performance.now();
        document.querySelector("#jobs th[data-sort=name] button").click();
        await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
        return performance.now() - start;
      })()`) as number;
      equal(await page.locator("#jobs th[data-sort=name]").getAttribute("aria-sort"), "ascending");
      deepStrictEqual((await names()).slice(0, 3), ["job-1", "job-2", "job-3"]);
      ok(sortMs < 500, `sorting 1,000 jobs took ${sortMs} ms`);
      await page.click("#jobs th[data-sort=name] button");
      await drawn();
      equal(await page.locator("#jobs th[data-sort=name]").getAttribute("aria-sort"), "descending");
      await page.click("#jobs th[data-sort=state] button");
      await drawn();
      equal((await names())[0], "sleeper"); // Active first.

      // Pages.
      await page.click("#page-next");
      await drawn();
      equal(await page.locator("#page-info").textContent(), `51–100 of ${JOBS.toLocaleString("en")}`);
      equal(await page.locator("#jobs tbody tr").count(), 50);
      await page.click("#page-prev");
      await drawn();

      // Filter the dropped jobs, then retry them all at once: the ones that failed once now complete.
      await page.click("#filters button[data-filter=DROPPED]");
      await drawn();
      equal(
        await page.locator("#page-info").textContent(),
        `1–${Math.min(50, FAIL_ONCE_JOBS + 1)} of ${FAIL_ONCE_JOBS + 1}`,
      );
      await page.click("#retry-dropped");
      await countReaches(page, "COMPLETED", JOBS - 2, 300_000);
      await countReaches(page, "DROPPED", 1, 60_000);
      equal(manager.getJobState("job-10"), "COMPLETED");
      equal(manager.getJobState("render-failed"), "DROPPED");
      await page.screenshot({ path: ".test-results/dashboard-1000-retried.png" });
      await manager.killJob("sleeper");
      deepStrictEqual(pageErrors, []);
      // deno-lint-ignore no-console
      console.log(`1,000 jobs ran in ${(ranMs / 1000).toFixed(1)} s; a sort took ${sortMs.toFixed(0)} ms`);
    } finally {
      await browser.close();
      await service.close();
      await server.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "dashboard: the passed-data editor is pre-filled per script, from the script's declaration or empty",
  ...BROWSER_TEST,
  async fn() {
    const scriptsDir = await Deno.makeTempDir({ prefix: "bgproc-dashboard-prefill-" });
    await Deno.writeTextFile(
      join(scriptsDir, "add_monkey.py"),
      '"""Monkeys."""\n# passed_data: {"size": 1, "count": 4}\n',
    );
    await Deno.writeTextFile(join(scriptsDir, "plain.py"), "python_data = {}\n");
    await Deno.writeTextFile(join(scriptsDir, "broken.py"), "# passed_data: {not json}\n");
    await using manager = new JobManager();
    await using service = createService({ manager, scriptsDir });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, service.fetch);
    const base = `http://127.0.0.1:${server.addr.port}`;
    const chromium = await loadChromium();
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox"] });
    try {
      const api = async (path: string) => (await service.fetch(new Request(`${base}${path}`))).json();
      deepStrictEqual(await api("/scripts/add_monkey.py"), {
        name: "add_monkey.py",
        passedData: { size: 1, count: 4 },
      });
      deepStrictEqual(await api("/scripts/plain.py"), { name: "plain.py", passedData: {} });
      deepStrictEqual(await api("/scripts/broken.py"), { name: "broken.py", passedData: {} });
      equal((await api("/scripts/nope.py")).error, "bad script");

      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await page.goto(`${base}/`);
      const data = page.locator("#data");
      await dataBecomes(page, '{"size":1,"count":4}');
      await page.selectOption("#script", "plain.py");
      await dataBecomes(page, "{}");
      // What the user typed for a script comes back with it; another script never inherits it.
      await page.fill("#data", '{"mine": true}');
      await page.selectOption("#script", "broken.py");
      await dataBecomes(page, "{}");
      await page.selectOption("#script", "plain.py");
      equal(await data.inputValue(), '{"mine": true}');
      await page.selectOption("#script", "add_monkey.py");
      await dataBecomes(page, '{"size":1,"count":4}');
    } finally {
      await browser.close();
      await service.close();
      await server.shutdown();
      await Deno.remove(scriptsDir, { recursive: true });
    }
  },
});
