/**
 * A host that dies (SIGKILL, SIGTERM, SIGINT) leaves no Blender behind: Blender sees its stdin close, ends its
 * process group (what the script started) and exits. The next manager removes the work root the dead host left.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobManager } from "../../mod.ts";
import { fixture, isAlive, MODES, waitFor } from "../_helpers.ts";

const CASES = MODES.flatMap((mode) =>
  (["SIGKILL", "SIGTERM", "SIGINT"] as const).map((signal) => [signal, mode] as const)
);
for (const [signal, mode] of CASES) {
  Deno.test(`${mode}: Blender and its children exit soon after the host gets ${signal}`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const pidFile = join(dir, "pids.json");
      const main = join(dir, "host.ts");
      await Deno.writeTextFile(
        main,
        `import { JobManager } from ${JSON.stringify(new URL("../../mod.ts", import.meta.url).href)};
const manager = new JobManager({ workDir: ${JSON.stringify(dir)}, mode: "${mode}" });
const job = manager.addJob({ script: ${JSON.stringify(fixture("spawn_child.py"))}, passedData: { pid_file: ${
          JSON.stringify(pidFile)
        } } });
for await (const p of job.progressUpdates()) if (p >= 0.1) break;
console.log("started");
await job.result();
`,
      );
      const host = new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", main],
        stdin: "null",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = host.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      while (!seen.includes("started")) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
      }
      await reader.cancel();
      ok(seen.includes("started"), "the host never started its job");
      const pids = JSON.parse(await Deno.readTextFile(pidFile));
      ok(isAlive(pids.blender) && isAlive(pids.child));
      host.kill(signal);
      await host.status;
      await waitFor(() => !isAlive(pids.blender), 5_000, "Blender to exit after its host died");
      await waitFor(() => !isAlive(pids.child), 5_000, "the script's child to exit after its host died");
      if (mode === "fork") await waitFor(() => !isAlive(pids.parent), 5_000, "the zygote to exit after its host died");

      const left = [...Deno.readDirSync(dir)].filter((entry) => entry.name.startsWith("bgproc-"));
      equal(left.length, 1, "the dead host's work root should still be there");
      await using next = new JobManager({ workDir: dir });
      ok(!existsSync(join(dir, left[0]!.name)), "the next manager did not remove the dead host's work root");
      deepStrictEqual(
        [...Deno.readDirSync(dir)].filter((entry) => entry.name.startsWith("bgproc-")).map((entry) => entry.name),
        [next.workRoot.slice(dir.length + 1)],
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a work root whose owner still runs is left alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using first = new JobManager({ workDir: dir });
    await using second = new JobManager({ workDir: dir });
    ok(existsSync(first.workRoot) && existsSync(second.workRoot));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
