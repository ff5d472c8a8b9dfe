/**
 * What a user sees when their script fails: the error's first line names their file and line, its stack ends
 * at their `await job.result()`, and the CLI shows their error without bgproc's internals (issue 25).
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { JobDroppedError, JobManager, type PythonError } from "../mod.ts";
import { createService } from "../src/service/mod.ts";
import { bgproc } from "./_cli.ts";
import { fixture } from "./_helpers.ts";

function dropped(pythonError: PythonError | null): JobDroppedError {
  return new JobDroppedError({
    jobName: "job-1",
    reason: "error",
    summary: "the script raised ValueError: no",
    attempts: 1,
    exitCode: 1,
    signal: null,
    pythonError,
    stderrTail: "",
    stdoutTail: "",
    commandLine: "blender -b",
  });
}

const frame = (file: string, line: number) => ({ file, line, function: "f", code: "" });

Deno.test("JobDroppedError's message says where: the deepest frame in the script, a SyntaxError's line", () => {
  const error = (frames: PythonError["frames"], extra: Partial<PythonError> = {}) =>
    dropped({ origin: "script", type: "ValueError", message: "no", frames, text: "", ...extra });
  // The script calls a helper module, which raises: the line of the script that called it is the user's bug.
  const nested = error([frame("/home/u/shot.py", 9), frame("/home/u/shot.py", 5), frame("/usr/lib/helper.py", 2)]);
  deepStrictEqual(nested.location, { file: "/home/u/shot.py", line: 5 });
  equal(nested.message, "Job 'job-1' was dropped (error) at shot.py:5: the script raised ValueError: no");
  match(nested.report.split("\n")[0]!, /^Job 'job-1' was dropped after 1 attempt \(error\) at shot\.py:5: /);
  const syntax = error([], { type: "SyntaxError", file: "/home/u/typo.py", line: 3 });
  deepStrictEqual(syntax.location, { file: "/home/u/typo.py", line: 3 });
  match(syntax.message, /^Job 'job-1' was dropped \(error\) at typo\.py:3: /);
  equal(error([]).location, null);
  equal(dropped(null).message, "Job 'job-1' was dropped (error): the script raised ValueError: no");
});

Deno.test("the README's first example on a raising script: the first line names raise.py:5, the stack is the user's", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const main = join(dir, "main.ts");
    await Deno.writeTextFile(
      main,
      `import { JobManager } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};

await using manager = new JobManager();
const job = manager.addJob({ script: ${JSON.stringify(fixture("raise.py"))}, passedData: { size: 2 } });
console.log((await job.result()).pythonData);
`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main],
      env: { NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    equal(output.code, 1, stderr);
    const lines = stderr.trimEnd().split("\n");
    match(
      lines[0]!,
      /^error: Uncaught \(in promise\) JobDroppedError: Job 'job-1' was dropped \(error\) at raise\.py:5: the script raised ValueError: bad value: 42/,
    );
    ok(lines.some((line) => line.includes(`${main}:5:`)), `the stack does not reach the user's await:\n${stderr}`);
    ok(!stderr.includes("/src/"), `bgproc's frames are shown:\n${stderr}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli run: a dropped job shows the user's error; the command line only with --verbose and in --log-file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const plain = await bgproc("run", fixture("raise.py"));
    equal(plain.code, 1);
    match(
      plain.stderr,
      /Job 'job-1' was dropped after 1 attempt \(error\) at raise\.py:5: the script raised ValueError/,
    );
    match(plain.stderr, /raise\.py", line 5, in explode/);
    for (const internal of ["--- command ---", "__main__.py", "--job-dir", "--- blender ---", "/tmp/bgproc-"]) {
      ok(!plain.stderr.includes(internal), `'${internal}' is shown without --verbose:\n${plain.stderr}`);
    }
    match(plain.stderr, /\(Blender's output and command line: --verbose, or --log-file FILE\)/);

    const verbose = await bgproc("run", fixture("raise.py"), "--verbose");
    match(verbose.stderr, /--- command ---\n.*blender.*__main__\.py/);

    const log = join(dir, "run.log");
    const logged = await bgproc("run", fixture("raise.py"), "--log-file", log);
    ok(!logged.stderr.includes("--- command ---"), logged.stderr);
    const text = await Deno.readTextFile(log);
    match(text, /job-1 \| Job 'job-1' was dropped after 1 attempt \(error\) at raise\.py:5/);
    match(text, /job-1 \| --- command ---\njob-1 \| .*blender/);

    const result = await bgproc("run", fixture("bad_python_data.py"));
    equal(result.code, 1);
    match(result.stderr, /PythonDataError: python_data\['not_json'\] cannot be sent as JSON/);
    ok(!result.stderr.includes("bgproc._runner"), `an internal module is named:\n${result.stderr}`);

    const syntax = await bgproc("run", fixture("syntax_error.py"));
    match(syntax.stderr, /dropped after 1 attempt \(error\) at syntax_error\.py:2: /);
    match(syntax.stderr, /def broken\(:\n\s+\^/);
    ok(!syntax.stderr.includes("--- command ---"), syntax.stderr);

    const timeout = await bgproc("run", fixture("sleep.py"), "--data", "seconds=30", "--timeout", "2");
    equal(timeout.code, 1);
    match(timeout.stderr, /\(timed-out\): Blender was killed after the 2000 ms timeout/);
    ok(!timeout.stderr.includes("--- command ---"), timeout.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli run --json: a dropped job prints its message and its Python error with the file and line", async () => {
  const { code, stdout } = await bgproc("run", fixture("raise.py"), "--json");
  equal(code, 1);
  const json = JSON.parse(stdout);
  equal(json.state, "DROPPED");
  equal(json.reason, "error");
  match(json.message, /^Job 'job-1' was dropped \(error\) at raise\.py:5: the script raised ValueError: bad value: 42/);
  equal(json.pythonError.type, "ValueError");
  match(json.pythonError.message, /^bad value: 42/);
  equal(json.pythonError.file, fixture("raise.py"));
  equal(json.pythonError.line, 5);
  match(json.pythonError.traceback, /Traceback \(most recent call last\)/);
});

Deno.test("the service's report of a dropped job says where too, by file name only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(fixture("raise.py"), join(dir, "raise.py"));
    await using manager = new JobManager();
    await using service = createService({ manager, scriptsDir: dir });
    const added = await service.fetch(
      new Request("http://127.0.0.1:8000/jobs", {
        method: "POST",
        body: JSON.stringify({ script: "raise.py", name: "bad" }),
        headers: { "content-type": "application/json" },
      }),
    );
    equal(added.status, 201);
    await added.body?.cancel();
    await manager.getJob("bad")!.result().catch(() => {});
    const detail = await (await service.fetch(new Request("http://127.0.0.1:8000/jobs/bad"))).json();
    match(
      detail.report,
      /^Dropped after 1 attempt \(error\) at raise\.py:5: the script raised ValueError: bad value: 42/,
    );
    ok(!detail.report.includes(dir), detail.report);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
