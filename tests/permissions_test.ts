/**
 * The README's permissions are enough for every mode: the job-level suite (tests/job_manager_test.ts) on fork,
 * process and pool mode, run by `deno test` under exactly `--allow-read --allow-write --allow-run --allow-env`, with
 * Deno's sanitizers on. (The suite's helpers read /proc through a program where Deno may not read it.)
 */

import { equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";

const README_FLAGS = ["--allow-read", "--allow-write", "--allow-run", "--allow-env"];
const SUITE = fileURLToPath(new URL("./job_manager_test.ts", import.meta.url));

Deno.test("the job-level suite passes in fork, process and pool mode under the README's permissions alone", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "--no-check",
      ...README_FLAGS,
      "--sanitize-ops",
      "--sanitize-resources",
      "--filter",
      "/^(fork|process|pool): /",
      SUITE,
    ],
    env: { BGPROC_SUITE_BACKENDS: "fork,process,pool", NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  const summary = /(ok|FAILED) \| (\d+) passed \| (\d+) failed/.exec(text);
  ok(summary !== null, `no summary from deno test:\n${text.slice(-3000)}`);
  equal(summary[3], "0", text.slice(text.lastIndexOf(" ERRORS ")));
  equal(code, 0, text.slice(-3000));
  // Every test of the suite for each of the three modes ran (none was filtered away by a rename).
  ok(Number(summary[2]) >= 3 * 12, `only ${summary[2]} tests ran`);
  match(text, /fork: passed data/);
});
