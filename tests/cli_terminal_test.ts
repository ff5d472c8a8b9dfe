/**
 * The CLI on a real terminal (tmux, at 60 and 120 columns) and through a pipe: names get the room they need,
 * the overall bar stays, no table repeats the ✔/✖ lines, Ctrl-C is reported as an interruption, and one name
 * per job on screen, on disk and in reports (issue 25).
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { bgproc, cli, hasTmux, Tmux } from "./_cli.ts";
import { fixture } from "./_helpers.ts";

const NOTE = `import bpy
with open(bpy.path.abspath("//note.txt"), "w") as handle:
    handle.write(passed_data.get("text", "hello"))
`;

/** A folder with the fixtures a batch needs, a scene, and a script that writes //note.txt. */
async function batchDir(): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const name of ["progress.py", "raise.py", "sleep.py"]) await Deno.copyFile(fixture(name), join(dir, name));
  await Deno.writeTextFile(join(dir, "note.py"), NOTE);
  const made = await bgproc("run", fixture("make_scene.py"), "--path", `out=${join(dir, "scene.blend")}`);
  equal(made.code, 0, made.stderr);
  return dir;
}

/** The bars, ✔/✖ lines and summary fit `width` (a report's prose after them may wrap, as prose does). */
function checkWidth(screens: readonly string[], width: number): void {
  for (const screen of screens) {
    for (const line of screen.split("\n")) {
      if (!/[█░⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✔✖]|^\d+ completed|^interrupted:/.test(line)) continue;
      ok([...line].length <= width, `a line is wider than ${width} columns (it wrapped):\n${line}`);
    }
  }
}

Deno.test({
  name: "cli batch under tmux at 60 and 120 columns: names get room, the overall bar stays, no table on a terminal",
  ignore: !hasTmux,
  async fn() {
    const dir = await batchDir();
    await using tmux = new Tmux();
    try {
      await Deno.writeTextFile(
        join(dir, "jobs.jsonc"),
        `[
          { "name": "shot-010-lighting-pass", "script": "progress.py", "data": { "steps": 10, "pause": 0.4 } },
          { "script": "raise.py" },
          { "script": "note.py", "blend": "scene.blend", "data": { "text": "third" } },
          { "name": "shot-040", "script": "progress.py", "data": { "steps": 10, "pause": 0.4 } },
        ]`,
      );
      for (const width of [60, 120]) {
        const out = join(dir, `out-${width}`);
        const command = `cd ${dir} && env -u INIT_CWD ${Deno.execPath()} run -A ${cli} batch jobs.jsonc --workers 2 ` +
          `--output ${out}`;
        const screens = await tmux.run(command, width);
        checkWidth(screens, width);
        const bars = screens.filter((screen) => screen.includes("█") || screen.includes("░"));
        ok(bars.length > 0, "no bars were seen");
        // The 22-character name is shown whole beside its bar (it was cut to 14 at 60 columns).
        ok(bars.some((screen) => /shot-010-lighting-pass +[█░]/.test(screen)), bars.join("\n---\n"));
        // Once a job failed the overall bar is still drawn, with the failure counted.
        const failed = bars.filter((screen) => /failed/.test(screen));
        ok(failed.length > 0, "no screen counted the failure");
        for (const screen of failed) {
          const overall = screen.split("\n").find((line) => line.includes("failed"))!;
          match(overall, /^ {2}[█░]{5,}.* 1 failed/, `the overall bar vanished:\n${screen}`);
        }
        const history = screens.at(-1)!.split("\n");
        const ended = history.filter((line) => /^[✔✖] /.test(line)).map((line) =>
          line.split(" ").slice(0, 2).join(" ")
        );
        deepStrictEqual(ended.toSorted(), ["✔ job-3", "✔ shot-010-lighting-pass", "✔ shot-040", "✖ job-2"]);
        ok(!history.some((line) => /^name\s+state\s+attempts/.test(line)), "a table repeats the ✔/✖ lines");
        ok(history.some((line) => /^3 completed, 1 dropped in [\d.]+ s/.test(line)), screens.at(-1));
        match(screens.at(-1)!, /EXIT=1/);
        // One name on screen and on disk: the unnamed third entry is job-3 in both; no folder for jobs that wrote nothing.
        equal(await Deno.readTextFile(join(out, "job-3", "note.txt")), "third");
        deepStrictEqual([...Deno.readDirSync(out)].map((entry) => entry.name), ["job-3"]);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "cli batch under tmux at 60 and 120 columns: Ctrl-C says how many running jobs were killed and how many never started",
  ignore: !hasTmux,
  async fn() {
    const dir = await batchDir();
    await using tmux = new Tmux();
    try {
      const entries = Array.from({ length: 6 }, (_, i) => `{ "name": "shot-0${i + 1}0", "script": "sleep.py" }`);
      await Deno.writeTextFile(join(dir, "six.jsonc"), `[${entries.join(",\n")}]`);
      for (const width of [60, 120]) {
        const command = `cd ${dir} && env -u INIT_CWD ${Deno.execPath()} run -A ${cli} batch six.jsonc --workers 2`;
        let sent = false;
        const screens = await tmux.run(command, width, async (session, screen) => {
          // Both running jobs have reported progress (sleep.py reports 0.1 first): interrupt.
          if (!sent && (screen.match(/ 10 %/g) ?? []).length === 2) {
            sent = true;
            await tmux.tmux("send-keys", "-t", session, "C-c");
          }
        });
        ok(sent, "the jobs never ran");
        checkWidth(screens, width);
        const last = screens.at(-1)!;
        match(last, /interrupted: 2 running jobs killed, 4 not started/);
        match(last, /EXIT=130/);
        const ended = last.split("\n").filter((line) => /^[✔✖] /.test(line));
        equal(ended.length, 2, `a ✖ line for a job that never started:\n${last}`);
        ok(ended.every((line) => /DROPPED \(killed, 1 attempt\)/.test(line)), last);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("cli batch, not a terminal: one name per job in the table and on disk; times match the end lines", async () => {
  const dir = await batchDir();
  try {
    await Deno.writeTextFile(
      join(dir, "jobs.jsonc"),
      `[
        { "name": "first", "script": "progress.py", "data": { "steps": 2, "pause": 0 } },
        { "script": "note.py", "blend": "scene.blend", "data": { "text": "second" } },
        { "script": "raise.py" },
      ]`,
    );
    const out = join(dir, "out");
    const { code, stdout, stderr } = await bgproc("batch", join(dir, "jobs.jsonc"), "--output", out);
    equal(code, 1, stderr);
    match(stdout, /\njob-2\s+COMPLETED\s+1\s+[\d.]+ s\n/);
    const dropped = /\njob-3\s+DROPPED \(error\)\s+1\s+([\d.]+ s)\n/.exec(stdout);
    ok(dropped !== null, stdout);
    ok(stderr.includes(`job-3: DROPPED (error, 1 attempt) after ${dropped[1]}`), stderr);
    equal(await Deno.readTextFile(join(out, "job-2", "note.txt")), "second");
    ok(!existsSync(join(out, "first")) && !existsSync(join(out, "job-3")), "an empty folder for a job with no files");
    // Not a terminal: no progress line after a job's end line.
    for (const name of ["first", "job-2"]) {
      const lines = stderr.split("\n").filter((line) => line.startsWith(`${name}: `));
      match(lines.at(-1)!, /: COMPLETED in /, lines.join("\n"));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli batch: an empty file says so; duplicate names name both entries; errors use the file's words", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "jobs.jsonc");
    await Deno.writeTextFile(file, "[]");
    const empty = await bgproc("batch", file);
    equal(empty.code, 0);
    equal(empty.stdout, "");
    match(empty.stderr, /lists no jobs: nothing to run/);
    await Deno.writeTextFile(file, `{ "jobs": [] }`);
    equal((await bgproc("batch", file, "--json")).stdout, "[]\n");

    const script = fixture("echo.py");
    await Deno.writeTextFile(file, `[{ "name": "a", "script": "${script}" }, { "name": "a", "script": "${script}" }]`);
    const duplicate = await bgproc("batch", file);
    equal(duplicate.code, 2);
    match(duplicate.stderr, /jobs\[1\] is named 'a', as jobs\[0\] is: names must differ/);

    await Deno.writeTextFile(file, `[{ "script": "${script}", "blend": "missing.blend" }]`);
    const missing = await bgproc("batch", file);
    equal(missing.code, 2);
    match(missing.stderr, /jobs\[0\]: blend .*missing\.blend does not exist/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: errors name the flags the user typed (--blend, --blender), not the library's options", async () => {
  const blend = await bgproc("run", fixture("echo.py"), "--blend", "/no/such/scene.blend");
  equal(blend.code, 2);
  equal(blend.stderr, "bgproc: --blend /no/such/scene.blend does not exist\n");
  const script = await bgproc("run", "/no/such/script.py");
  equal(script.stderr, "bgproc: the script /no/such/script.py does not exist\n");
  const blender = await bgproc("run", fixture("echo.py"), "--blender", "/no/such/blender");
  equal(blender.code, 3);
  match(blender.stderr, /looked at --blender \(\/no\/such\/blender\)/);
  match(blender.stderr, /name the executable with --blender PATH or the BLENDER environment variable/);
  ok(!/blendFile|'blender' option|`blender` option/.test(blend.stderr + blender.stderr));
});

Deno.test({
  name: "cli render under tmux at 60 and 120 columns: the bar counts frames; the end names the folder and the count",
  ignore: !hasTmux,
  async fn() {
    const dir = await Deno.makeTempDir();
    await using tmux = new Tmux();
    try {
      const made = await bgproc("run", fixture("make_render_scene.py"), "--path", `path=${join(dir, "shot.blend")}`);
      equal(made.code, 0, made.stderr);
      for (const width of [60, 120]) {
        const command = `cd ${dir} && env -u INIT_CWD ${Deno.execPath()} run -A ${cli} render shot.blend ` +
          `--frames 1-6 --chunk 2 --samples 1 --output out-${width}`;
        const screens = await tmux.run(command, width);
        checkWidth(screens, width);
        ok(screens.some((screen) => /[█░]+ +\d+ % {2}\d\/6 frames/.test(screen)), screens.join("\n---\n"));
        const last = screens.at(-1)!;
        match(last, new RegExp(`^6 frames in ${dir}/out-${width}/ \\(frame_0001\\.png … frame_0006\\.png\\)$`, "m"));
        ok(!last.includes(`out-${width}/frame_0003.png`), `every frame's path is printed on a terminal:\n${last}`);
        match(last, /EXIT=0/);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("cli batch, not a terminal: Ctrl-C (SIGINT) counts the killed and the never started; exit 130", async () => {
  const dir = await batchDir();
  try {
    const entries = Array.from({ length: 5 }, (_, i) => `{ "name": "s${i + 1}", "script": "sleep.py" }`);
    await Deno.writeTextFile(join(dir, "five.jsonc"), `[${entries.join(",")}]`);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli, "batch", join(dir, "five.jsonc"), "--workers", "2"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const decoder = new TextDecoder();
    let stderr = "";
    const reader = child.stderr.getReader();
    // Both running jobs have reported progress (sleep.py reports 10 % first): interrupt, as Ctrl-C would.
    while ((stderr.match(/: 10 %/g) ?? []).length < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += decoder.decode(value, { stream: true });
    }
    child.kill("SIGINT");
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      stderr += decoder.decode(chunk.value);
    }
    const [status, stdout] = await Promise.all([child.status, new Response(child.stdout).text()]);
    equal(status.code, 130, stderr);
    match(stderr, /\ninterrupted: 2 running jobs killed, 3 not started\n/);
    equal(stderr.split("\n").filter((line) => /: DROPPED/.test(line)).length, 2, stderr);
    match(stdout, /\ns3\s+not started\s+0\s+-\n/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
