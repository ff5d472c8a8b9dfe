/** The command line over NATS: `bgproc batch --nats URL` runs a batch on `bgproc worker` processes, with --addon. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixture } from "../_helpers.ts";
import { bgprocCommand, startNatsServer, startWorker } from "./_server.ts";

const CLI = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

Deno.test("bgproc batch --nats runs every job of a batch on two workers, with the task's permissions", async () => {
  await using server = await startNatsServer();
  await using _left = await startWorker(server.url, ["--namespace", "cli", "--mode", "pool"]);
  await using _right = await startWorker(server.url, ["--namespace", "cli", "--mode", "fork"]);
  const dir = await Deno.makeTempDir();
  try {
    const entries = Array.from(
      { length: 6 },
      (_, i) => ({ name: `cli-${i}`, script: fixture("echo.py"), data: { i } }),
    );
    await Deno.writeTextFile(join(dir, "jobs.jsonc"), JSON.stringify(entries));
    const output = await bgprocCommand(
      ["batch", join(dir, "jobs.jsonc"), "--nats", server.url, "--namespace", "cli", "--json"],
    ).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const rows = JSON.parse(new TextDecoder().decode(output.stdout)) as {
      name: string;
      state: string;
      pythonData: { passed_data: { i: number } };
    }[];
    assert.deepEqual(
      rows.map((row) => [row.name, row.state, row.pythonData.passed_data.i]),
      entries.map((e) => [e.name, "COMPLETED", e.data.i]),
    );
    assert.match(stderr, /cli-5: COMPLETED/);

    const refused = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "batch", join(dir, "jobs.jsonc"), "--nats", server.url, "--workers", "3"],
      stdin: "null",
      stdout: "null",
    }).output();
    assert.equal(refused.code, 2);
    assert.match(new TextDecoder().decode(refused.stderr), /--workers is the workers' with --nats/);

    // --addon travels with each job: the worker's Blender enables it before the script.
    const probe = [{ name: "probe", script: fixture("startup_probe.py"), data: { check: ["node_wrangler"] } }];
    await Deno.writeTextFile(join(dir, "probe.jsonc"), JSON.stringify(probe));
    const withAddon = await bgprocCommand(
      [
        "batch",
        join(dir, "probe.jsonc"),
        "--nats",
        server.url,
        "--namespace",
        "cli",
        "--addon",
        "node_wrangler",
        "--json",
      ],
    ).output();
    assert.equal(withAddon.code, 0, new TextDecoder().decode(withAddon.stderr));
    const [row] = JSON.parse(new TextDecoder().decode(withAddon.stdout)) as { pythonData: { loaded: object } }[];
    assert.deepEqual(row!.pythonData.loaded, { node_wrangler: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
