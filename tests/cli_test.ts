/** The bgproc CLI, run as a subprocess against real Blender. */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixture } from "./_helpers.ts";

const cli = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

async function bgproc(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-run", "--allow-env", "--allow-net", cli, ...args],
    stdin: "null",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

Deno.test("cli run: progress lines, python_data as JSON, data from --data and --data-json, args after --", async () => {
  const { code, stdout, stderr } = await bgproc(
    "run",
    fixture("echo.py"),
    "--data-json",
    '{"nested": {"a": [1, 2]}}',
    "--data",
    "size=2",
    "--data",
    "label=it's ünïcode",
    "--json",
    "--",
    "--frame",
    "3",
  );
  equal(code, 0, stderr);
  const result = JSON.parse(stdout);
  equal(result.state, "COMPLETED");
  deepStrictEqual(result.pythonData.passed_data, { nested: { a: [1, 2] }, size: 2, label: "it's ünïcode" });
  deepStrictEqual(result.pythonData.argv_after_dashes, ["--frame", "3"]);
  match(stderr, /job-1: COMPLETED/);
  const progress = await bgproc("run", fixture("progress.py"), "--data", "steps=2", "--data", "pause=0.05");
  equal(progress.code, 0);
  match(progress.stderr, /job-1: 50 %\njob-1: 100 %/);
  deepStrictEqual(JSON.parse(progress.stdout), { steps: 2 });
});

Deno.test("cli run: a dropped job exits 1 with the report on stderr", async () => {
  const { code, stderr } = await bgproc("run", fixture("raise.py"));
  equal(code, 1);
  match(stderr, /Traceback \(most recent call last\)/);
  match(stderr, /ValueError: bad value: 42/);
});

Deno.test("cli: bad usage is one line on stderr and exit 2", async () => {
  for (
    const args of [
      ["run", fixture("echo.py"), "--bogus"],
      ["run", fixture("echo.py"), "--timeout", "-1"],
      ["run", fixture("echo.py"), "--data", "novalue"],
      ["run"],
      ["run", "/no/such/script.py"],
      ["frobnicate"],
      ["batch", "/no/such/jobs.jsonc"],
    ]
  ) {
    const { code, stderr } = await bgproc(...args);
    equal(code, 2, `${args.join(" ")}: ${stderr}`);
    equal(stderr.trim().split("\n").length, 1, `${args.join(" ")} printed more than one line: ${stderr}`);
    match(stderr, /^bgproc: /);
  }
  for (const command of ["run", "batch", "info"]) {
    const { code, stdout } = await bgproc(command, "--help");
    equal(code, 0);
    match(stdout, /^Usage: bgproc/);
  }
});

Deno.test("cli batch: a JSONC list with comments runs, prints a summary, exits 1 when one is dropped", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "jobs.jsonc");
    await Deno.writeTextFile(
      file,
      `// three jobs, one of which fails
[
  { "name": "one", "script": ${JSON.stringify(fixture("progress.py"))}, "data": { "steps": 2, "pause": 0 } },
  { "name": "two", "script": ${JSON.stringify(fixture("progress.py"))}, "data": { "steps": 3, "pause": 0 }, },
  /* this one raises */
  { "name": "three", "script": ${JSON.stringify(fixture("raise.py"))} },
]`,
    );
    const table = await bgproc("batch", file, "--workers", "2");
    equal(table.code, 1, table.stderr);
    match(table.stdout, /^name\s+state\s+attempts\s+time\n/);
    match(table.stdout, /\none\s+COMPLETED\s+1\s+[\d.]+ s\n/);
    match(table.stdout, /\nthree\s+DROPPED \(error\)\s+1\s+-\n/);
    match(table.stderr, /ValueError/);
    const json = await bgproc("batch", file, "--json");
    deepStrictEqual(
      JSON.parse(json.stdout).map((row: { name: string; state: string }) => [row.name, row.state]),
      [["one", "COMPLETED"], ["two", "COMPLETED"], ["three", "DROPPED"]],
    );

    await Deno.writeTextFile(file, `[{ "script": "a.py" }, { "scrip": "typo.py" }]`);
    const bad = await bgproc("batch", file);
    equal(bad.code, 2);
    match(bad.stderr, /jobs\[1\] has an unknown field 'scrip'/);
    await Deno.writeTextFile(file, `[{ "script": "a.py" `);
    const broken = await bgproc("batch", file);
    equal(broken.code, 2);
    match(broken.stderr, /jobs\.jsonc:1: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli info: the Blender, its version and the mode", async () => {
  const { code, stdout } = await bgproc("info", "--json", "--mode", "pool");
  equal(code, 0);
  const info = JSON.parse(stdout);
  match(info.version, /^Blender \d/);
  equal(info.mode, "pool");
  ok(info.blender.endsWith("blender"));
});
