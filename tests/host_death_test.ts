/** A host killed with SIGKILL leaves no Blender behind: Blender sees its stdin close and exits. */

import { ok } from "node:assert/strict";
import { join } from "node:path";
import { fixture, isAlive, waitFor } from "./_helpers.ts";

Deno.test("Blender exits soon after its host is killed with SIGKILL", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pidFile = join(dir, "blender.pid");
    const main = join(dir, "host.ts");
    await Deno.writeTextFile(
      main,
      `import { JobManager } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
const manager = new JobManager({ workDir: ${JSON.stringify(dir)} });
const job = manager.addJob({ script: ${JSON.stringify(fixture("sleep.py"))}, passedData: { pid_file: ${
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
    const blender = Number(await Deno.readTextFile(pidFile));
    ok(isAlive(blender));
    host.kill("SIGKILL");
    await host.status;
    await waitFor(() => !isAlive(blender), 5_000, "Blender to exit after its host died");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
