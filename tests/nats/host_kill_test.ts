/**
 * A host SIGKILLed while its job runs on a worker (no close, no goodbye): a new host process finds the job by name
 * and gets its result.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NatsJobManager } from "../../src/nats/mod.ts";
import { fixture } from "../_helpers.ts";
import { startNatsServer, startWorker } from "./_server.ts";

const NATS_MOD = new URL("../../src/nats/mod.ts", import.meta.url).href;
const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));

Deno.test("a host SIGKILLed mid-job: a restarted host finds the job and its result", async () => {
  await using server = await startNatsServer();
  await using _worker = await startWorker(server.url, ["--namespace", "hostkill"]);
  const dir = await Deno.makeTempDir();
  try {
    const host = join(dir, "host.ts");
    await Deno.writeTextFile(
      host,
      `import { NatsJobManager } from ${JSON.stringify(NATS_MOD)};
const manager = await NatsJobManager.connect({ nats: { servers: Deno.args[0], namespace: "hostkill" } });
const job = manager.addJob({ name: "host gone 1", script: Deno.args[1], passedData: { seconds: 2 } });
for await (const progress of job.progressUpdates()) if (progress > 0) break;
console.log("running");
await new Promise(() => {});
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", CONFIG, host, server.url, fixture("sleep.py")],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let printed = "";
    while (!printed.includes("running")) {
      const { value, done } = await reader.read();
      if (done) break;
      printed += value;
    }
    assert.match(printed, /running/);
    child.kill("SIGKILL");
    await reader.cancel();
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");

    await using again = await NatsJobManager.connect({ nats: { servers: server.url, namespace: "hostkill" } });
    const job = again.getJob("host gone 1");
    assert.ok(job !== undefined, again.getJobNames().join(", "));
    assert.deepEqual((await job.result()).pythonData, { slept: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
