/** Bad input is rejected before anything starts, with a typed error, and nothing queued is lost. */

import { deepStrictEqual, equal, match, ok, throws } from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import { BlenderNotFoundError, findBlender, InvalidJobError, JobManager, type JsonValue } from "../mod.ts";
import { checkJobName } from "../src/_validate.ts";
import { nameOfToken, nameToken } from "../src/_name_token.ts";
import { jobDirName } from "../src/local/job/dir.ts";
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
    ["name", () => manager.addJob({ name: ".hidden", script: fixture("echo.py") })],
    ["name", () => manager.addJob({ name: "a\\b", script: fixture("echo.py") })],
    ["name", () => manager.addJob({ name: " padded ", script: fixture("echo.py") })],
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
    // Not Unicode, too deep for Python, or dropped by JSON: each would start a job that cannot get its data.
    ["passedData.s", () => manager.addJob({ script: fixture("echo.py"), passedData: { s: "ok \ud800" } })],
    ["passedData.\udc00", () => manager.addJob({ script: fixture("echo.py"), passedData: { "\udc00": 1 } })],
    [
      "passedData.deep" + "[0]".repeat(499),
      () => manager.addJob({ script: fixture("echo.py"), passedData: { deep: nested(500) } }),
    ],
    [
      "passedData.deep" + "[0]".repeat(499),
      () => manager.addJob({ script: fixture("echo.py"), passedData: { deep: nested(50_000) } }),
    ],
    ["passedData", () => manager.addJob({ script: fixture("echo.py"), passedData: { [Symbol("s")]: 1 } as never })],
  ];
  for (const [field, add] of cases) {
    throws(add, (error) => error instanceof InvalidJobError && error.field === field, `expected an error on ${field}`);
  }
  deepStrictEqual(manager.getJobNames(), ["good"]);
  equal((await good.result()).name, "good");
  const again = manager.addJob({ name: "good", script: fixture("progress.py"), passedData: { steps: 2, pause: 0 } });
  equal(manager.getJob("good"), again, "a new job replaces an ended one of the same name");
  deepStrictEqual((await again.result()).pythonData, { steps: 2 });
  // The deepest nesting allowed, and any well-formed Unicode, reach Python and come back intact.
  const deepest = { deep: nested(498), text: "a 😀 \u{10FFFF} \ud83d\ude00" };
  const echoed = await manager.addJob({ script: fixture("echo.py"), passedData: deepest }).result();
  deepStrictEqual(echoed.pythonData.passed_data, deepest);
});

/** Arrays nested `levels` deep: `[[[...[]...]]]`. */
function nested(levels: number): JsonValue[] {
  let value: JsonValue[] = [];
  for (let level = 1; level < levels; level++) value = [value];
  return value;
}

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
  // A bare name is looked up on PATH (BLENDER=blender works); a relative path is not.
  const env = { PATH: `/nonexistent:${dirname(onPath)}` };
  equal(findBlender({ env: { ...env, BLENDER: basename(onPath) } }), onPath);
  equal(findBlender({ blender: basename(onPath), env }), onPath);
  throws(() => findBlender({ env: { ...env, BLENDER: "./no/such/blender" } }), BlenderNotFoundError);
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

Deno.test("job names: printable Unicode up to 128 code points; '/', '\\', controls, a leading dot and edge spaces are not", () => {
  const good = [
    "test1.py_Square Object",
    "test1.py_Würfel",
    "レンダー 010",
    "a..b",
    "-dash",
    "x".repeat(128),
    "😀".repeat(128), // 128 code points, 256 UTF-16 units.
    "👨‍👩‍👧 family", // Zero-width joiners are printable parts of an emoji.
    "tab\u00a0inside ok",
  ];
  for (const name of good) equal(checkJobName(name), name);
  const bad: [unknown, RegExp][] = [
    ["", /1 to 128 characters long \(it has 0\)/],
    ["x".repeat(129), /\(it has 129\)/],
    ["😀".repeat(129), /\(it has 129\)/],
    ["a/b", /'\/', '\\'.*U\+002F at 1/],
    ["a\\b", /U\+005C/],
    ["a\0b", /U\+0000/],
    ["line\nbreak", /U\+000A/],
    ["del\x7f", /U\+007F/],
    ["c1\u0085", /U\+0085/],
    ["sep\u2028", /U\+2028/],
    ["bidi\u202eevil", /U\+202E/],
    ["lone\ud800", /unpaired surrogate/],
    [".hidden", /must not start with '\.'/],
    ["..", /must not start with '\.'/],
    [" lead", /white space/],
    ["trail ", /white space/],
    ["\u3000ideographic", /white space/],
    ["   ", /white space/],
    [42, /must be a string/],
  ];
  for (const [name, message] of bad) {
    throws(() => checkJobName(name), (error) =>
      error instanceof InvalidJobError && error.field === "name" &&
      message.test(error.message), `expected ${JSON.stringify(name)} to be rejected with ${message}`);
  }
});

Deno.test("job directory names: ASCII, short, never a leading dot, apart for names that sanitize alike", () => {
  const names = [
    "test1.py_Square Object",
    "test1.py_Würfel",
    "test1.py_Wurfel",
    "test1.py_Wu?rfel",
    "レンダー 010",
    "レンダー 011",
    "---",
    "😀".repeat(128),
    "x".repeat(128),
  ];
  const dirs = names.map((name) => jobDirName(7, name));
  equal(new Set(dirs).size, names.length);
  for (const dir of dirs) {
    match(dir, /^7-([A-Za-z0-9][A-Za-z0-9._-]*-)?[0-9a-f]{12}$/);
    ok(new TextEncoder().encode(dir).length <= 80, dir);
  }
  match(jobDirName(3, "test1.py_Würfel"), /^3-test1\.py_Wurfel-[0-9a-f]{12}$/);
  match(jobDirName(4, "test1.py_Square Object"), /^4-test1\.py_Square_Object-[0-9a-f]{12}$/);
  match(jobDirName(5, "レンダー 010"), /^5-010-[0-9a-f]{12}$/);
  match(jobDirName(6, "---"), /^6-[0-9a-f]{12}$/);
  equal(jobDirName(1, "same"), jobDirName(1, "same"));
});

Deno.test("NATS name tokens: one subject token and a valid KV key for any job name, and back", () => {
  const names = ["test1.py_Square Object", "test1.py_Würfel", "レンダー 010", "a=b~c.d*e>f", "plain-name_1", "😀"];
  for (const name of names) {
    const token = nameToken(name);
    match(token, /^[A-Za-z0-9_=-]+$/); // No '.', '*', '>' or white space; nats.js's KV key check passes.
    equal(nameOfToken(token), name);
  }
  equal(nameToken("shot.010"), "shot=2E010");
  equal(nameToken("plain-name_1"), "plain-name_1");
  equal(new Set(names.map(nameToken)).size, names.length);
  throws(() => nameOfToken("a.b"), RangeError);
  throws(() => nameOfToken("=FF"), TypeError);
});

Deno.test("factoryStartup and addons are checked: a manager throws TypeError, addJob InvalidJobError", async () => {
  throws(() => new JobManager({ factoryStartup: "no" as never }), TypeError);
  throws(() => new JobManager({ addons: "node_wrangler" as never }), /'addons' must be an array/);
  throws(() => new JobManager({ addons: ["bad name"] }), /'addons' must hold add-on module names/);
  await using manager = new JobManager();
  const cases: [string, () => unknown][] = [
    ["factoryStartup", () => manager.addJob({ script: fixture("echo.py"), factoryStartup: 1 as never })],
    ["addons", () => manager.addJob({ script: fixture("echo.py"), addons: ["ok", "../evil"] })],
    ["addons", () => manager.addJob({ script: fixture("echo.py"), addons: [""] })],
    ["addons", () => manager.addJob({ script: fixture("echo.py"), addons: "node_wrangler" as never })],
  ];
  for (const [field, add] of cases) {
    throws(add, (error) => error instanceof InvalidJobError && error.field === field, `expected an error on ${field}`);
  }
  deepStrictEqual(manager.getJobNames(), []);
});
