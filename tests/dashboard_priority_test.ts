/**
 * Priorities in the dashboard, in real headless Chromium under the dashboard's own Content Security Policy: one slot
 * busy with a sleeping job, five jobs queued behind it with priorities (one added from the form), shown in the list
 * and sorted by them; a queued job's priority set from its details with the keyboard (a bad value refused in place)
 * makes it start first once the slot frees, as the service's event stream shows; a running job's priority gets 409.
 * Screenshots at 1280×800 and on a phone-sized viewport go to .test-results/.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobManager } from "../mod.ts";
import { createService } from "../src/service/mod.ts";
import { fixture, waitFor } from "./_helpers.ts";
import { BROWSER_TEST, CHROMIUM, loadChromium, type Loose } from "./_chromium.ts";

/** What the service's event stream said: which jobs went ACTIVE, in order, and every `priority` event. */
interface Streamed {
  /** Whether the snapshot came: from then on, no event is missed. */
  connected: boolean;
  readonly started: string[];
  readonly priorities: { name: string; priority: number }[];
}

/** Follow `GET /events` over HTTP until `signal` aborts. */
async function follow(url: string, signal: AbortSignal, into: Streamed): Promise<void> {
  const response = await fetch(url, { signal });
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const type = /^event: (\w+)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (data === undefined) continue;
        const event = JSON.parse(data);
        if (type === "snapshot") into.connected = true;
        if (type === "state" && event.state === "ACTIVE") into.started.push(event.name);
        if (type === "priority") into.priorities.push({ name: event.name, priority: event.priority });
      }
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** The job names in the list, top to bottom, once they are `expected` (it redraws at the next animation frame). */
async function rowsInOrder(page: Loose, expected: string[]): Promise<void> {
  const rows = page.locator("#jobs tbody tr");
  const names = async () => {
    const found: string[] = [];
    for (let i = 0; i < await rows.count(); i++) found.push(await rows.nth(i).getAttribute("data-job"));
    return found;
  };
  const deadline = Date.now() + 10_000;
  while (JSON.stringify(await names()) !== JSON.stringify(expected)) {
    if (Date.now() > deadline) deepStrictEqual(await names(), expected, "the rows' order");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The text of the details' fact `term`. */
async function factText(page: Loose, term: string): Promise<string> {
  return await page.locator(`#detail-facts dt:text-is("${term}") + dd`).textContent() ?? "";
}

/** Waits until the list's priority cell of `name` reads `text`. */
async function priorityCell(page: Loose, name: string, text: string): Promise<void> {
  await page.locator(`tr[data-job='${name}'] td.priority:text-is("${text}")`).waitFor({ timeout: 10_000 });
}

/** The jobs table fits its section: no sideways scrolling. */
async function checkTableFits(page: Loose): Promise<void> {
  const section = await page.locator("#jobs-section").boundingBox();
  const table = await page.locator("#jobs").boundingBox();
  ok(table.width <= section.width + 0.5, `the table (${table.width} px) is wider than its section (${section.width})`);
}

/** The details and the priority form are inside the viewport's `width`. */
async function checkFormFits(page: Loose, width: number): Promise<void> {
  for (const selector of ["#priority-input", "#priority-button", "#detail", "#new-job"]) {
    const box = await page.locator(selector).boundingBox();
    ok(box !== null && box.x >= 0 && box.x + box.width <= width + 0.5, `${selector} overflows at ${width} px`);
  }
}

/** Sets `name`'s priority from its details with the keyboard only: a fraction is refused in place, then 10. */
async function setFromDetails(page: Loose, name: string): Promise<void> {
  await page.click(`tr[data-job='${name}'] .name button`);
  await page.locator(`#detail-title:text-is("Job ${name}")`).waitFor();
  // The facts and the form are redrawn at the next animation frame.
  await page.locator(`#detail-facts dt:text-is("State") + dd:text-is("QUEUED")`).waitFor();
  const input = page.getByLabel("New priority");
  await input.waitFor({ state: "visible" });
  equal(await factText(page, "Priority"), "0");
  equal(await input.inputValue(), "0");
  await input.fill("2.5");
  await input.press("Enter");
  match(await page.locator("#priority-error").textContent() ?? "", /whole number/);
  equal(await input.getAttribute("aria-invalid"), "true");
  equal(await factText(page, "Priority"), "0");
  await input.fill("10");
  equal(await page.locator("#priority-error").textContent(), "", "typing clears the error");
  await input.press("Tab"); // To the labelled Set button, which Enter presses.
  equal(await page.getByRole("button", { name: "Set priority" }).count(), 1);
  equal(await page.locator("#priority-button:focus").count(), 1, "Tab goes from the input to Set");
  await page.keyboard.press("Enter");
  await priorityCell(page, name, "10");
  await page.locator(`#detail-facts dt:text-is("Priority") + dd:text-is("10")`).waitFor();
  equal(await input.getAttribute("aria-invalid"), "false");
}

/** A request to the service: its status and JSON body. */
type Call = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: Loose }>;

/** The one slot sleeps; only then do four jobs queue behind it (a job queued first would start first). */
async function queueBehindSleeper(call: Call, manager: JobManager): Promise<void> {
  const sleeper = await call("POST", "/jobs", { name: "sleeper", script: "sleep.py", passedData: { seconds: 300 } });
  equal(sleeper.status, 201, JSON.stringify(sleeper.body));
  await waitFor(() => manager.getJob("sleeper")?.state === "ACTIVE", 60_000, "the sleeper to start");
  for (const [name, priority] of [["q-low", -1], ["q-zero", undefined], ["q-mid", 3], ["q-high", 5]] as const) {
    const added = await call("POST", "/jobs", {
      name,
      script: "echo.py",
      ...(priority === undefined ? {} : { priority }),
    });
    equal(added.status, 201, JSON.stringify(added.body));
  }
}

/** The dashboard at 1280×800 under its real policy (no bypassCSP), with its errors collected in `pageErrors`. */
async function openDashboard(browser: Loose, url: string, pageErrors: string[]): Promise<Loose> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("pageerror", (error: Error) => pageErrors.push(error.message));
  // A blocked inline style or script is a console error; 404s are not ours (GET /blends without a blends folder).
  page.on("console", (message: Loose) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      pageErrors.push(message.text());
    }
  });
  await page.goto(url);
  await page.locator("#script option[value='echo.py']").waitFor({ state: "attached" });
  return page;
}

/** One more job from the form, with its optional priority; every row shows its priority. */
async function addFromForm(page: Loose, call: Call): Promise<void> {
  await page.selectOption("#script", "echo.py");
  await page.fill("#data", "{}");
  await page.fill("#job-name", "q-form");
  await page.getByLabel("Priority (optional)").fill("2");
  await page.click("#add-button");
  await priorityCell(page, "q-form", "2");
  equal((await call("GET", "/jobs/q-form")).body.priority, 2);
  const shown = { sleeper: "0", "q-low": "-1", "q-zero": "0", "q-mid": "3", "q-high": "5" };
  for (const [name, text] of Object.entries(shown)) await priorityCell(page, name, text);
}

/** A running job's priority cannot change (409), nor does its details show the form. */
async function checkRunningRefused(page: Loose, call: Call): Promise<void> {
  const running = await call("POST", "/jobs/sleeper/priority", { priority: 3 });
  equal(running.status, 409);
  deepStrictEqual(Object.keys(running.body).sort(), ["detail", "error"]);
  equal(running.body.error, "job not queued");
  await page.click("tr[data-job='sleeper'] .name button");
  await page.locator(`#detail-title:text-is("Job sleeper")`).waitFor();
  // The facts are redrawn at the next animation frame.
  await page.locator(`#detail-facts dt:text-is("State") + dd:text-is("ACTIVE")`).waitFor();
  equal(await factText(page, "Priority"), "0");
  ok(await page.locator("#priority-form").isHidden());
}

/** The slot frees: the queued jobs start by priority, q-zero (set to 10) first, as the event stream tells. */
async function checkStartOrder(page: Loose, streamed: Streamed): Promise<void> {
  await page.click("tr[data-job='sleeper'] button.cancel");
  await page.locator("tr[data-job='sleeper'] .state:has-text('DROPPED (killed)')").waitFor({ timeout: 30_000 });
  for (const name of ["q-zero", "q-high", "q-mid", "q-form", "q-low"]) {
    await page.locator(`tr[data-job='${name}'] .state.COMPLETED`).waitFor({ timeout: 120_000 });
  }
  deepStrictEqual(streamed.started, ["sleeper", "q-zero", "q-high", "q-mid", "q-form", "q-low"]);
  deepStrictEqual(streamed.priorities, [
    { name: "q-low", priority: -1 },
    { name: "q-mid", priority: 3 },
    { name: "q-high", priority: 5 },
    { name: "q-form", priority: 2 },
    { name: "q-zero", priority: 10 },
  ]);
  // An ended job keeps its priority, but the form is gone from its details.
  await page.click("tr[data-job='q-zero'] .name button");
  await page.locator(`#detail-facts dt:text-is("State") + dd:text-is("COMPLETED")`).waitFor();
  equal(await factText(page, "Priority"), "10");
  ok(await page.locator("#priority-form").isHidden());
}

Deno.test({
  name: "dashboard priority: the list shows and sorts priorities; one set in a queued job's details starts it first",
  ...BROWSER_TEST,
  async fn() {
    const scriptsDir = await Deno.makeTempDir({ prefix: "bgproc-dashboard-priority-" });
    for (const name of ["echo.py", "sleep.py"]) await Deno.copyFile(fixture(name), join(scriptsDir, name));
    await using manager = new JobManager({ maxWorkers: 1, mode: "pool" });
    await using service = createService({ manager, scriptsDir });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, service.fetch);
    const base = `http://127.0.0.1:${server.addr.port}`;
    const call: Call = async (method, path, body) => {
      const response = await fetch(`${base}${path}`, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
      });
      return { status: response.status, body: await response.json() };
    };
    const streamed: Streamed = { connected: false, started: [], priorities: [] };
    const stop = new AbortController();
    const following = follow(`${base}/events`, stop.signal, streamed);
    const chromium = await loadChromium();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    try {
      await waitFor(() => streamed.connected, 10_000, "the event stream's snapshot");
      await queueBehindSleeper(call, manager);
      await Deno.mkdir(".test-results", { recursive: true });
      const pageErrors: string[] = [];
      const page = await openDashboard(browser, `${base}/`, pageErrors);
      await addFromForm(page, call);

      // Sorted by priority: highest first, and among equals the newest first (as the list's default).
      await page.click("#jobs th[data-sort=priority] button");
      equal(await page.locator("#jobs th[data-sort=priority]").getAttribute("aria-sort"), "descending");
      await rowsInOrder(page, ["q-high", "q-mid", "q-form", "q-zero", "sleeper", "q-low"]);
      await checkTableFits(page); // At 1280×800 with the details closed, as before the column.

      // Set from q-zero's details: it goes to the top of the list and the details.
      await setFromDetails(page, "q-zero");
      await rowsInOrder(page, ["q-zero", "q-high", "q-mid", "q-form", "sleeper", "q-low"]);
      equal((await call("GET", "/jobs/q-zero")).body.priority, 10);
      equal(manager.getJob("q-zero")?.priority, 10);
      await checkFormFits(page, 1280);
      await page.screenshot({ path: ".test-results/dashboard-priority.png" });
      await page.setViewportSize({ width: 390, height: 844 });
      await checkFormFits(page, 390);
      await checkTableFits(page);
      await page.screenshot({ path: ".test-results/dashboard-priority-phone.png", fullPage: true });
      await page.setViewportSize({ width: 1280, height: 800 });

      await checkRunningRefused(page, call);
      await checkStartOrder(page, streamed);
      deepStrictEqual(pageErrors, []);
      for (const name of ["dashboard-priority.png", "dashboard-priority-phone.png"]) {
        ok(existsSync(join(".test-results", name)));
      }
    } finally {
      stop.abort();
      await following.catch(() => {});
      await browser.close();
      await service.close();
      await server.shutdown();
      await Deno.remove(scriptsDir, { recursive: true });
    }
  },
});
