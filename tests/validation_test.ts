/** Bad input is rejected before anything starts, with a typed error, and nothing queued is lost. */

import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { BlenderNotFoundError, findBlender, InvalidJobError, JobManager } from "../mod.ts";
import { fixture } from "./_helpers.ts";

Deno.test("bad job options throw InvalidJobError naming the field, and the queued job still completes", async () => {
  await using manager = new JobManager({ maxWorkers: 1 });
  const good = manager.addJob({ name: "good", script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } });
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  const cases: [string, () => unknown][] = [
    ["name", () => manager.addJob({ name: "", script: fixture("echo.py") })],
    ["name", () => manager.addJob({ name: "../escape", script: fixture("echo.py") })],
    ["name", () => manager.addJob({ name: "a/b", script: fixture("echo.py") })],
    ["name", () => manager.addJob({ name: "..", script: fixture("echo.py") })],
    ["name", () => manager.addJob({ name: "x".repeat(129), script: fixture("echo.py") })],
    ["name", () => manager.addJob({ name: "good", script: fixture("echo.py") })],
    ["script", () => manager.addJob({ script: fixture("no_such_script.py") })],
    ["script", () => manager.addJob({ script: join(fixture("echo.py"), "..") })],
    ["blendFile", () => manager.addJob({ script: fixture("echo.py"), blendFile: "/no/such.blend" })],
    ["timeout", () => manager.addJob({ script: fixture("echo.py"), timeout: -1 })],
    ["args", () => manager.addJob({ script: fixture("echo.py"), args: [1 as unknown as string] })],
    ["passedData", () => manager.addJob({ script: fixture("echo.py"), passedData: [] as never })],
    [
      "passedData.when",
      () => manager.addJob({ script: fixture("echo.py"), passedData: { when: new Date() as never } }),
    ],
    ["passedData.n", () => manager.addJob({ script: fixture("echo.py"), passedData: { n: NaN } })],
    ["passedData.f", () => manager.addJob({ script: fixture("echo.py"), passedData: { f: (() => 1) as never } })],
    ["passedData.u", () => manager.addJob({ script: fixture("echo.py"), passedData: { u: undefined as never } })],
    ["passedData.a[1]", () => manager.addJob({ script: fixture("echo.py"), passedData: { a: [1, 2n as never] } })],
    ["passedData.self", () => manager.addJob({ script: fixture("echo.py"), passedData: cycle as never })],
  ];
  for (const [field, add] of cases) {
    throws(add, (error) => error instanceof InvalidJobError && error.field === field, `expected an error on ${field}`);
  }
  deepStrictEqual(manager.getJobNames(), ["good"]);
  equal((await good.result()).name, "good");
  const again = manager.addJob({ name: "good", script: fixture("progress.py"), passedData: { steps: 2, pause: 0 } });
  equal(manager.getJob("good"), again, "a new job replaces an ended one of the same name");
  deepStrictEqual((await again.result()).pythonData, { steps: 2 });
});

Deno.test("an aborted signal is rejected by addJob", async () => {
  await using manager = new JobManager();
  throws(() => manager.addJob({ script: fixture("echo.py"), signal: AbortSignal.abort(new Error("no")) }), /no/);
  deepStrictEqual(manager.getJobNames(), []);
});

Deno.test("bad manager options throw RangeError", () => {
  throws(() => new JobManager({ maxWorkers: 0 }), RangeError);
  throws(() => new JobManager({ maxWorkers: 1.5 }), RangeError);
  throws(() => new JobManager({ maxAttempts: 0 }), RangeError);
  throws(() => new JobManager({ timeout: -5 }), RangeError);
});

Deno.test("unknown job names throw RangeError", async () => {
  await using manager = new JobManager();
  throws(() => manager.getJobState("nope"), RangeError);
  throws(() => manager.getJobProgress("nope"), RangeError);
  throws(() => manager.getIssueString("nope"), RangeError);
  equal(manager.getJob("nope"), undefined);
});

Deno.test("a missing Blender is a BlenderNotFoundError that says how to install it", () => {
  throws(() => new JobManager({ blender: "/no/such/blender" }), (error) => {
    ok(error instanceof BlenderNotFoundError);
    ok(error.message.includes("apt-get install blender"));
    deepStrictEqual(error.searched, ["the 'blender' option (/no/such/blender)"]);
    return true;
  });
  throws(() => findBlender({ env: { PATH: "/nowhere:/also/nowhere" } }), BlenderNotFoundError);
  throws(() => findBlender({ env: { BLENDER: "/no/such/blender", PATH: "/usr/bin" } }), BlenderNotFoundError);
  throws(() => findBlender({ env: { BLENDER: fixture("echo.py") } }), BlenderNotFoundError, "not executable");
});

Deno.test("findBlender takes the option, then $BLENDER, then PATH", () => {
  const onPath = findBlender();
  equal(findBlender({ blender: onPath, env: {} }), onPath);
  equal(findBlender({ env: { BLENDER: onPath } }), onPath);
});

Deno.test("timeouts a timer cannot hold, folders as log files and non-.blend blend files are rejected", async () => {
  await using manager = new JobManager();
  throws(() => manager.addJob({ script: fixture("echo.py"), timeout: 30 * 24 * 3600 * 1000 }), InvalidJobError);
  throws(() => new JobManager({ timeout: 2 ** 31 }), RangeError);
  throws(() => manager.addJob({ script: fixture("echo.py"), logFile: manager.workRoot }), InvalidJobError);
  throws(() => manager.addJob({ script: fixture("echo.py"), blendFile: fixture("echo.py") }), /not a \.blend file/);
  deepStrictEqual(manager.getJobNames(), []);
  equal(manager.health.status, "ok");
});
