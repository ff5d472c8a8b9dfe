/** The service's dashboard in real headless Chromium: submit a job, watch it finish, cancel a long one. */

import { equal, match, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { JobManager } from "../mod.ts";
import { createService } from "../src/service/mod.ts";

const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";

/**
 * playwright-core, loaded without its type declarations: they pull the DOM library into the whole type check,
 * where it clashes with Deno's own stream types. The few calls below are typed by hand.
 */
// deno-lint-ignore no-explicit-any
type Loose = any;
async function loadChromium(): Promise<Loose> {
  const specifier = "playwright-core";
  return (await import(specifier)).chromium;
}

Deno.test({
  name: "dashboard: a job's bar reaches 100 % with its python_data; a cancelled job is marked killed",
  ignore: !existsSync(CHROMIUM),
  // playwright-core drives Chromium through Node-compat child processes and sockets whose bookkeeping
  // Deno's sanitizers attribute to the test; everything is closed in `finally` below.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const scriptsDir = fileURLToPath(new URL("../examples/scripts/", import.meta.url));
    await using manager = new JobManager({ maxWorkers: 2 });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      createService({ manager, scriptsDir }),
    );
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
      const page = await browser.newPage({ viewport: { width: 1100, height: 600 } });
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      await page.fill("input[name=script]", "add_monkey.py");
      await page.fill("input[name=data]", '{"size": 1, "count": 3, "label": "from the dashboard"}');
      await page.click("button:has-text('Add job')");
      const first = page.locator("tr[data-job='job-1']");
      await first.locator(".state:has-text('COMPLETED')").waitFor({ timeout: 60_000 });
      equal(await first.locator(".bar > div").evaluate((bar: { style: { width: string } }) => bar.style.width), "100%");
      match(await first.locator(".data").textContent() ?? "", /"total_vertices"/);
      match(await first.locator(".data").textContent() ?? "", /from the dashboard/);

      await page.fill("input[name=script]", "slow_count.py");
      await page.fill("input[name=data]", '{"steps": 200, "seconds": 60}');
      await page.click("button:has-text('Add job')");
      const second = page.locator("tr[data-job='job-2']");
      await second.locator(".state:has-text('ACTIVE')").waitFor({ timeout: 60_000 });
      await page.waitForFunction(
        `parseFloat(document.querySelector("tr[data-job='job-2'] .bar > div")?.style.width ?? "0") > 0`,
        undefined,
        { timeout: 60_000 },
      );
      await second.locator("button.cancel").click();
      await second.locator(".state:has-text('DROPPED (killed)')").waitFor({ timeout: 30_000 });
      equal(manager.getJobState("job-2"), "DROPPED");
      await Deno.mkdir(".test-results", { recursive: true });
      await page.screenshot({ path: ".test-results/dashboard.png" });
      ok(existsSync(".test-results/dashboard.png"));
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
