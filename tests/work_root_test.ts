/**
 * Work roots under the permissions the README's tasks grant (not -A): a dead
 * host's root is swept by the next manager, a live one's is not, and a
 * missing permission is one clear line that leaves no root behind, in every
 * mode. (`tests/permissions_test.ts` runs the job-level suite under them.)
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { JobManager } from "../mod.ts";

const TASK_FLAGS = ["--allow-read", "--allow-write", "--allow-run", "--allow-env"];
const host = fileURLToPath(new URL("./fixtures/host.ts", import.meta.url));

/** Start a host under `flags`; resolves with it and its work root (or its one error line). */
async function startHost(dir: string, flags: string[], mode = "process") {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, host, dir, mode],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  await reader.cancel(); // The rest of its output is not needed.
  return { child, root: text.trim() };
}

Deno.test("a killed host's work root is swept by the next manager; a live host's is left", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const dead = await startHost(dir, TASK_FLAGS);
    const live = await startHost(dir, TASK_FLAGS);
    ok(existsSync(dead.root) && existsSync(live.root));
    dead.child.kill("SIGKILL");
    await dead.child.status;
    await dead.child.stderr.cancel();
    const next = await startHost(dir, TASK_FLAGS);
    equal(existsSync(dead.root), false, "the killed host's root was not swept");
    ok(existsSync(live.root), "a live host's root was swept");
    for (const { child } of [live, next]) {
      child.kill("SIGKILL");
      await child.status;
      await child.stderr.cancel();
    }
    await new JobManager({ workDir: dir }).close(); // Sweeps both.
    deepStrictEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const mode of ["fork", "process", "pool"]) {
  Deno.test(`${mode}: without --allow-run, one line names the flag, and no work root is left`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const { code, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["run", ...TASK_FLAGS.filter((flag) => flag !== "--allow-run"), host, dir, mode],
        stdout: "null",
        stderr: "piped",
      }).output();
      equal(code, 2);
      const text = new TextDecoder().decode(stderr).trim();
      equal(text.split("\n").length, 1, text);
      match(text, /needs --allow-run to start Blender/);
      deepStrictEqual([...Deno.readDirSync(dir)], []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a root kept with keepFiles survives the next manager", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kept = new JobManager({ workDir: dir, keepFiles: true });
    await kept.close();
    await using _next = new JobManager({ workDir: dir });
    ok(existsSync(kept.workRoot), "the kept work root was swept");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
