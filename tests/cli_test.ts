/** The bgproc CLI, run as a subprocess against real Blender. */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fixture } from "./_helpers.ts";
import { bgproc, bgprocIn, cli, hasTmux, Tmux } from "./_cli.ts";

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

Deno.test("cli run --output: the files a job writes are kept there, and --json prints only paths that stay", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const blend = join(dir, "shot.blend");
    equal((await bgproc("run", fixture("make_render_scene.py"), "--path", `path=${blend}`)).code, 0);
    const elsewhere = join(dir, "still.png");
    const out = join(dir, "out");
    const kept = await bgproc(
      "run",
      fixture("render_own_path.py"),
      "--blend",
      blend,
      "--path",
      `elsewhere=${elsewhere}`,
      "--output",
      out,
      "--json",
    );
    equal(kept.code, 0, kept.stderr);
    const outputs = JSON.parse(kept.stdout).outputs as { path: string; kind: string }[];
    deepStrictEqual(outputs.map((output) => output.path), [
      join(out, "notes", "readme.txt"),
      join(out, "renders", "frame_0001.png"),
      join(out, "renders", "frame_0002.png"),
      join(out, "renders", "frame_0003.png"),
      // Not `elsewhere`: Blender saved it outside --output, where any `Saved:` line a script prints could point.
    ]);
    for (const { path } of outputs) ok(existsSync(path), path);
    const batchFile = join(dir, "jobs.jsonc");
    const entry = { script: fixture("render_own_path.py"), blend: blend, data: { elsewhere } };
    await Deno.writeTextFile(batchFile, JSON.stringify([{ ...entry, name: "Würfel 1" }, entry]));
    const batch = await bgproc("batch", batchFile, "--output", join(dir, "batch"), "--json");
    equal(batch.code, 0, batch.stderr);
    ok(existsSync(join(dir, "batch", "Würfel 1", "renders", "frame_0003.png")), "a folder per job: its name");
    ok(existsSync(join(dir, "batch", "job-2", "renders", "frame_0003.png")), "or job-N, N its place in the file");
    equal(JSON.parse(batch.stdout)[1].outputs.length, 4);
    const lost = await bgproc(
      "run",
      fixture("render_own_path.py"),
      "--blend",
      blend,
      "--path",
      `elsewhere=${elsewhere}`,
      "--json",
    );
    equal(lost.code, 0, lost.stderr);
    equal(JSON.parse(lost.stdout).outputs, undefined);
    match(lost.stderr, /the job wrote 4 file\(s\), not kept: name a folder with --output DIR/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli run: a dropped job exits 1 with the report on stderr", async () => {
  const { code, stderr } = await bgproc("run", fixture("raise.py"));
  equal(code, 1);
  match(stderr, /Traceback \(most recent call last\)/);
  match(stderr, /ValueError: bad value: 42/);
});

Deno.test("cli: bad usage is one line on stderr and exit 2, with suggestions; a missing Blender is exit 3", async () => {
  for (
    const [args, pattern] of [
      [["run", fixture("echo.py"), "--bogus"], /unknown flag '--bogus'/],
      [["run", fixture("echo.py"), "--timout", "3"], /unknown flag '--timout'; did you mean '--timeout'\?/],
      [["batch", "x.jsonc", "--worker", "3"], /did you mean '--workers'\?/],
      [["run", fixture("echo.py"), "--timeout", "-1"], /--timeout must be a positive number, not '-1'/],
      [["run", fixture("echo.py"), "--data", "novalue"], /--data takes KEY=VALUE/],
      [["run", fixture("echo.py"), "--timeout"], /--timeout needs a value/],
      [["run"], /run needs a SCRIPT/],
      [["run", "/no/such/script.py"], /script/],
      [["runn", "x.py"], /unknown command 'runn'; did you mean 'run'\?/],
      [["batch", "/no/such/jobs.jsonc"], /cannot read/],
      [["serve"], /serve needs --scripts DIR/],
    ] as const
  ) {
    const { code, stderr } = await bgproc(...args);
    equal(code, 2, `${args.join(" ")}: ${stderr}`);
    equal(stderr.trim().split("\n").length, 1, `${args.join(" ")} printed more than one line: ${stderr}`);
    match(stderr, /^bgproc: /);
    match(stderr, pattern);
  }
  const missing = await bgprocIn({ env: { BLENDER: "/nonexistent/blender" } }, "run", fixture("echo.py"));
  equal(missing.code, 3);
  equal(missing.stderr.trim().split("\n").length, 1, missing.stderr);
  match(missing.stderr, /^bgproc: Cannot find Blender/);

  const usage = await bgproc();
  equal(usage.code, 2);
  match(usage.stderr, /^bgproc \d+\.\d+\.\d+ — /);
  equal(usage.stdout, "");
  const version = await bgproc("--version");
  equal(version.code, 0);
  match(version.stdout, /^bgproc \d+\.\d+\.\d+\n$/);
  for (const command of ["run", "batch", "info", "serve"]) {
    for (const args of [[command, "--help"], ["help", command]]) {
      const { code, stdout } = await bgproc(...args);
      equal(code, 0);
      match(stdout, new RegExp(`^Usage: bgproc ${command}`));
    }
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
    match(table.stdout, /\nthree\s+DROPPED \(error\)\s+1\s+[\d.]+ s\n/); // The time its ✖ line said.
    match(table.stderr, /ValueError/);
    const json = await bgproc("batch", file, "--json");
    deepStrictEqual(
      JSON.parse(json.stdout).map((row: { name: string; state: string }) => [row.name, row.state]),
      [["one", "COMPLETED"], ["two", "COMPLETED"], ["three", "DROPPED"]],
    );

    await Deno.writeTextFile(file, `[{ "script": "a.py" }, { "scrip": "typo.py" }]`);
    const bad = await bgproc("batch", file);
    equal(bad.code, 2);
    match(bad.stderr, /jobs\[1\] has an unknown field 'scrip'; did you mean 'script'\?/);
    await Deno.writeTextFile(file, `[\n  { "script": "a.py" },\n  { "script": "b.py" "name": "x" }\n]`);
    const broken = await bgproc("batch", file);
    equal(broken.code, 2);
    deepStrictEqual(broken.stderr.split("\n").slice(0, 3), [
      `bgproc: ${file}:3:22: a comma was expected`,
      `    { "script": "b.py" "name": "x" }`,
      `                       ^`,
    ]);
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

Deno.test("cli: paths are the caller's (INIT_CWD under deno task) and the batch file's; --logs and --log-file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "work", "inputs"), { recursive: true });
    await Deno.copyFile(fixture("echo.py"), join(dir, "work", "echo.py"));
    await Deno.writeTextFile(join(dir, "work", "data.json"), '{"from": "file"}');
    // As under `deno task`: the process runs elsewhere, INIT_CWD names the user's folder.
    const run = await bgprocIn(
      { cwd: dir, env: { INIT_CWD: join(dir, "work") } },
      "run",
      "echo.py",
      "--data-file",
      "data.json",
      "--path",
      "input=inputs/a.png",
      "--json",
      "--logs",
      "--log-file",
      "out.log",
    );
    equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout);
    deepStrictEqual(result.pythonData.passed_data, { from: "file", input: join(dir, "work", "inputs", "a.png") });
    match(run.stderr, /^job-1 \| /m);
    match(await Deno.readTextFile(join(dir, "work", "out.log")), /^job-1 \| /m);

    // Batch entries: relative to the batch file, including the data and args values listed in "paths".
    await Deno.writeTextFile(
      join(dir, "work", "jobs.jsonc"),
      `[{ "name": "p", "script": "echo.py", "data": { "tex": "inputs/t.png", "n": 1 }, "args": ["--out", "o.txt"],
          "paths": ["data/tex", "args/1"] }]`,
    );
    const batch = await bgprocIn({ cwd: dir }, "batch", "work/jobs.jsonc", "--json");
    equal(batch.code, 0, batch.stderr);
    const [row] = JSON.parse(batch.stdout);
    deepStrictEqual(row.pythonData.passed_data, { tex: join(dir, "work", "inputs", "t.png"), n: 1 });
    deepStrictEqual(row.pythonData.argv_after_dashes, ["--out", join(dir, "work", "o.txt")]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: not a terminal, progress is one line per 10 % at most", async () => {
  const { code, stderr } = await bgproc("run", fixture("progress.py"), "--data", "steps=100", "--data", "pause=0.005");
  equal(code, 0, stderr);
  const progress = stderr.split("\n").filter((line) => / %$/.test(line));
  ok(progress.length <= 10, `${progress.length} progress lines:\n${stderr}`);
  deepStrictEqual(
    stderr.split("\n").filter((line) => line.startsWith("job-1: ") && !line.endsWith("%")).map((l) => l.split(" ")[1]),
    [
      "QUEUED",
      "ACTIVE",
      "COMPLETED",
    ],
  );
});

Deno.test({
  name: "cli batch under tmux at 70 and 120 columns: bars fit, redraw in place, one ✔/✖ line per job",
  ignore: !hasTmux,
  async fn() {
    const dir = await Deno.makeTempDir();
    await using tmux = new Tmux();
    try {
      await Deno.copyFile(fixture("progress.py"), join(dir, "progress.py"));
      await Deno.copyFile(fixture("raise.py"), join(dir, "raise.py"));
      const long = "a-job-name-far-too-long-to-fit-beside-a-bar-in-seventy-columns-of-terminal";
      await Deno.writeTextFile(
        join(dir, "jobs.jsonc"),
        `[
          { "name": "${long}", "script": "progress.py", "data": { "steps": 10, "pause": 0.25 } },
          { "name": "two", "script": "progress.py", "data": { "steps": 10, "pause": 0.2 } },
          { "name": "three", "script": "progress.py", "data": { "steps": 10, "pause": 0.2 } },
          { "name": "four", "script": "raise.py" },
          { "name": "five", "script": "progress.py", "data": { "steps": 10, "pause": 0.2 } },
          { "name": "six", "script": "progress.py", "data": { "steps": 5, "pause": 0.2 } },
        ]`,
      );
      for (const width of [70, 120]) {
        // Without INIT_CWD (`deno task test` sets one, tmux passes it on): paths are the shell's, as for a user.
        const command = `cd ${dir} && env -u INIT_CWD ${Deno.execPath()} run -A ${cli} batch jobs.jsonc --workers 3`;
        const screens = await tmux.run(command, width);
        const screen = screens.at(-1)!;
        const frames = screens.filter((frame) => frame.includes("█"));
        ok(frames.length > 0, "no bars were seen");
        for (const frame of frames) {
          for (const line of frame.split("\n")) {
            ok([...line].length <= width, `a line is wider than ${width} columns (it wrapped):\n${line}`);
          }
          // Bars are redrawn in place: at most one overall line on screen and in scrollback.
          ok(frame.split("\n").filter((line) => line.includes("done ·")).length <= 1, `bars piled up:\n${frame}`);
        }
        const history = screen.split("\n");
        equal(history.filter((line) => line.includes("█") || line.includes("░")).length, 0, "bars left behind");
        equal(history.filter((line) => /^[✔✖] /.test(line)).length, 6, screen);
        ok(history.some((line) => /^✖ four DROPPED \(error, 1 attempt\)/.test(line)), screen);
        match(screen, /5 completed, 1 dropped in /);
        match(screen, /EXIT=1/);
        ok(history.length < 60, `${history.length} lines of scrollback for 6 jobs`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
