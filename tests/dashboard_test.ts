/**
 * The dashboard in real headless Chromium, over the one shared event stream: 12 live jobs added from the
 * form with all their progress shown live, inline JSON errors, the detail panel (log tail, python_data, a
 * dropped job's report), cancel, retry, filters, search and clear finished; screenshots at 1280×800 and on a
 * phone-sized viewport go to .test-results/.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobManager } from "../mod.ts";
import { createService } from "../src/service/mod.ts";
import { fixture } from "./_helpers.ts";

/** Waits until the list shows `count` rows: it redraws at the next animation frame after a filter or a search. */
async function rowsBecome(page: Loose, count: number): Promise<void> {
  const rows = page.locator("#jobs tbody tr:not([hidden])");
  const deadline = Date.now() + 10_000;
  while (await rows.count() !== count) {
    if (Date.now() > deadline) equal(await rows.count(), count, "rows on screen");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const TICK = `"""Ticks: prints a line and reports progress at each step, then leaves a 1x1 PNG in output_dir."""
import base64, os, time

steps = int(passed_data.get("steps", 10))
for i in range(1, steps + 1):
    print(f"tick {i} of {steps}", flush=True)
    update_job_progress(i / steps)
    time.sleep(float(passed_data.get("pause", 0.15)))
png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
with open(os.path.join(passed_data["output_dir"], "thumb.png"), "wb") as handle:
    handle.write(base64.b64decode(png))
python_data = {"ticks": steps, "nested": {"list": [1, 2, 3]}}
`;
import { BROWSER_TEST, CHROMIUM, loadChromium, type Loose } from "./_chromium.ts";

Deno.test({
  name: "dashboard: 12 live jobs on one event stream; detail, report, log tail, cancel, retry, filters, clear",
  ...BROWSER_TEST,
  async fn() {
    const scriptsDir = await Deno.makeTempDir({ prefix: "bgproc-dashboard-" });
    await Deno.writeTextFile(join(scriptsDir, "tick.py"), TICK);
    for (const name of ["raise.py", "sleep.py"]) await Deno.copyFile(fixture(name), join(scriptsDir, name));
    await using manager = new JobManager({ maxWorkers: 3, mode: "pool" });
    const outputsDir = await Deno.makeTempDir({ prefix: "bgproc-dashboard-outputs-" });
    await using service = createService({ manager, scriptsDir, outputsDir });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, service.fetch);
    const chromium = await loadChromium();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      await Deno.mkdir(".test-results", { recursive: true });
      // The page's CSP forbids eval, which waitForFunction needs; service_test checks the header itself.
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
      const pageErrors: string[] = [];
      page.on("pageerror", (error: Error) => pageErrors.push(error.message));
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      await page.locator("#script option[value='tick.py']").waitFor({ state: "attached" });
      deepStrictEqual(
        await page.locator("#script option").evaluateAll((options: { value: string }[]) => options.map((o) => o.value)),
        ["raise.py", "sleep.py", "tick.py"],
      );

      // A malformed passed-data value shows its error in place and disables the button.
      await page.fill("#data", '{"steps": 10,\n "pause": }');
      match(await page.locator("#data-error").textContent() ?? "", /line 2, column \d+/);
      equal(await page.locator("#data").getAttribute("aria-invalid"), "true");
      ok(await page.locator("#add-button").isDisabled());
      await page.fill("#data", "[1, 2]");
      match(await page.locator("#data-error").textContent() ?? "", /JSON object/);

      // Watch every progress bar in the page: which jobs showed progress strictly between 0 and 1.
      await page.evaluate(`window.seenLive = new Set(); setInterval(() => {
        for (const row of document.querySelectorAll("#jobs tbody tr")) {
          const value = row.querySelector("progress").value;
          if (value > 0 && value < 1) window.seenLive.add(row.dataset.job);
        }
      }, 25);`);
      await page.selectOption("#script", "tick.py");
      await page.fill("#data", '{"steps": 10, "pause": 0.2}');
      for (let i = 0; i < 12; i++) await page.click("#add-button");
      await page.locator("#jobs tbody tr").nth(11).waitFor();
      equal(await page.locator("[data-count=all]").textContent(), "12");
      // While they run, open one: its log tail is live.
      await page.locator("tr[data-job='job-1'] .state.ACTIVE").waitFor({ timeout: 60_000 });
      await page.click("tr[data-job='job-1'] .name button");
      await page.locator("#detail-log:has-text('tick 3 of 10')").waitFor({ timeout: 60_000 });
      await page.screenshot({ path: ".test-results/dashboard-live.png" });
      await page.waitForFunction(
        `document.querySelector("[data-count=COMPLETED]").textContent === "12"`,
        undefined,
        { timeout: 120_000 },
      );
      deepStrictEqual(
        (await page.evaluate("[...window.seenLive].sort()") as string[]).length,
        12,
        "every job's progress must show live",
      );
      await page.locator("#detail-data:not([hidden])").waitFor();
      match(await page.locator("#detail-data pre").textContent() ?? "", /"ticks": 10/);
      match(await page.locator("#detail-log").textContent() ?? "", /tick 10 of 10/);
      // The job's output image, as a thumbnail.
      const thumb = page.locator("#detail-outputs img[alt='thumb.png']");
      await thumb.waitFor();
      await page.waitForFunction(`document.querySelector("#detail-outputs img").naturalWidth === 1`);

      // A dropped job's report.
      await page.selectOption("#script", "raise.py");
      await page.fill("#data", "{}");
      await page.fill("#job-name", "bad");
      await page.click("#add-button");
      await page.locator("tr[data-job='bad'] .state:has-text('DROPPED (error)')").waitFor({ timeout: 60_000 });
      await page.click("tr[data-job='bad'] .name button");
      await page.locator("#detail-report:not([hidden])").waitFor();
      const report = await page.locator("#detail-report pre").textContent() ?? "";
      match(report, /ValueError: bad value: 42/);
      ok(!report.includes(scriptsDir), "the report shows a server path");
      await page.screenshot({ path: ".test-results/dashboard-report.png" });

      // Cancel a running job, retry it, cancel it again.
      await page.selectOption("#script", "sleep.py");
      await page.fill("#data", '{"seconds": 120}');
      await page.fill("#job-name", "long");
      await page.click("#add-button");
      const long = page.locator("tr[data-job='long']");
      await long.locator(".state.ACTIVE").waitFor({ timeout: 60_000 });
      await long.locator("button.cancel").click();
      await long.locator(".state:has-text('DROPPED (killed)')").waitFor({ timeout: 30_000 });
      await long.locator("button.retry").click();
      await long.locator(".state.ACTIVE").waitFor({ timeout: 60_000 });
      equal(manager.getJobState("long"), "ACTIVE");
      await long.locator("button.cancel").click();
      await long.locator(".state:has-text('DROPPED (killed)')").waitFor({ timeout: 30_000 });

      // Filters and search.
      await page.click("#filters button[data-filter=DROPPED]");
      await rowsBecome(page, 2);
      await page.click("#filters button[data-filter='']");
      await page.fill("#search", "job-1");
      await rowsBecome(page, 4); // job-1, job-10, job-11, job-12
      await page.fill("#search", "");
      // Keyboard: Escape closes the detail panel.
      await page.keyboard.press("Escape");
      ok(await page.locator("#detail").isHidden());

      // The phone-sized layout.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: ".test-results/dashboard-phone.png", fullPage: true });
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.screenshot({ path: ".test-results/dashboard.png" });

      // Clear finished: every job has ended, so all go.
      await page.click("#clear-finished");
      await page.waitForFunction(`document.querySelectorAll("#jobs tbody tr").length === 0`, undefined, {
        timeout: 10_000,
      });
      equal(manager.getJobNames().length, 0);
      deepStrictEqual(pageErrors, []);
      for (const name of ["dashboard.png", "dashboard-live.png", "dashboard-report.png", "dashboard-phone.png"]) {
        ok(existsSync(join(".test-results", name)));
      }
    } finally {
      await browser.close();
      await service.close();
      await server.shutdown();
      await Deno.remove(scriptsDir, { recursive: true });
      await Deno.remove(outputsDir, { recursive: true });
    }
  },
});
