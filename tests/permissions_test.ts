/**
 * The README's permissions are enough for every mode: the job-level suite (tests/job_manager_test.ts) on fork,
 * process and pool mode, run by `deno test` under exactly `--allow-read --allow-write --allow-run --allow-env`, with
 * Deno's sanitizers on. (The suite's helpers read /proc through a program where Deno may not read it.)
 */

import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { fixture } from "./_helpers.ts";
import { fileURLToPath } from "node:url";

const README_FLAGS = ["--allow-read", "--allow-write", "--allow-run", "--allow-env"];
const SUITE = fileURLToPath(new URL("./job_manager_test.ts", import.meta.url));
const DAEMONS = fileURLToPath(new URL("./faults/daemon_test.ts", import.meta.url));

/** `deno test` on `file` under the README's flags: its output, after checking that every test passed. */
async function testUnderReadmeFlags(file: string, filter?: string): Promise<{ passed: number; text: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "--no-check",
      ...README_FLAGS,
      "--sanitize-ops",
      "--sanitize-resources",
      ...(filter === undefined ? [] : ["--filter", filter]),
      file,
    ],
    env: { BGPROC_SUITE_BACKENDS: "fork,process,pool", NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  const summary = /(ok|FAILED) \| (\d+) passed \| (\d+) failed/.exec(text);
  ok(summary !== null, `no summary from deno test:\n${text.slice(-3000)}`);
  equal(summary[3], "0", text.slice(text.lastIndexOf(" ERRORS ")));
  equal(code, 0, text.slice(-3000));
  return { passed: Number(summary[2]), text };
}

Deno.test("the job-level suite passes in fork, process and pool mode under the README's permissions alone", async () => {
  const { passed, text } = await testUnderReadmeFlags(SUITE, "/^(fork|process|pool): /");
  // Every test of the suite for each of the three modes ran (none was filtered away by a rename).
  ok(passed >= 3 * 12, `only ${passed} tests ran`);
  match(text, /fork: passed data/);
});

Deno.test("under the README's permissions, a daemon a killed job leaves is gone too, in every mode", async () => {
  const { passed, text } = await testUnderReadmeFlags(DAEMONS);
  ok(!/ignored/.test(text.split("\n").filter((line) => line.includes(" ... ")).join("\n")), text);
  ok(passed >= 3, `only ${passed} tests ran`);
});

Deno.test("under the README's permissions, where no cgroup can be made, the first job's stderr says so and jobs run", async () => {
  // A Blender that sees no cgroup2 file system (as in a sandbox): it cannot make its cgroup. .ci/setup installs bwrap.
  const dir = await Deno.makeTempDir();
  try {
    const blender = join(dir, "blender");
    await Deno.writeTextFile(
      blender,
      `#!/bin/sh\nexec bwrap --bind / / --dev-bind /dev /dev --proc /proc --tmpfs /sys/fs/cgroup ${
        JSON.stringify(Deno.env.get("BLENDER") ?? "blender")
      } "$@"\n`,
    );
    await Deno.chmod(blender, 0o755);
    const host = join(dir, "host.ts");
    await Deno.writeTextFile(
      host,
      `import { JobManager } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
const stderr = [];
for (const mode of ["process", "fork", "pool"]) {
  await using manager = new JobManager({ mode, blender: ${JSON.stringify(blender)}, workDir: ${JSON.stringify(dir)} });
  for (let i = 0; i < 2; i++) {
    stderr.push((await manager.addJob({ script: ${JSON.stringify(fixture("echo.py"))} }).result()).stderr);
  }
}
console.log(JSON.stringify(stderr));
`,
    );
    const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...README_FLAGS, host],
      stdin: "null",
    }).output();
    ok(success, new TextDecoder().decode(stderr));
    const said = (JSON.parse(new TextDecoder().decode(stdout)) as string[]).map((text) =>
      /bgproc: no cgroup could be made \([^)]*\); a process a killed job leaves in a session of its own may outlive it/
        .test(text)
    );
    // Once per host process (its first Blender's first job), not on every job.
    equal(said.filter(Boolean).length, 1, JSON.stringify(said));
    equal(said[0], true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
