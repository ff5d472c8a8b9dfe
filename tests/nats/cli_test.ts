/** The command line over NATS: `bgproc batch --nats URL` runs a batch on `bgproc worker` processes. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixture } from "../_helpers.ts";
import { startNatsServer, startWorker } from "./_server.ts";

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
    const env = Deno.env.toObject();
    delete env.INIT_CWD;
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...["--allow-read", "--allow-write", "--allow-run", "--allow-env", "--allow-net"],
        CLI,
        "batch",
        join(dir, "jobs.jsonc"),
        "--nats",
        server.url,
        "--namespace",
        "cli",
        "--json",
      ],
      stdin: "null",
      clearEnv: true,
      env: { ...env, NO_COLOR: "1" },
    }).output();
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
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("done when: a 30-job batch from the CLI on three workers loses nothing when one worker is SIGKILLed", async () => {
  await using server = await startNatsServer();
  const workerArgs = ["--namespace", "done", "--mode", "pool", "--ack-wait", "1500"];
  await using first = await startWorker(server.url, workerArgs);
  await using victim = await startWorker(server.url, workerArgs);
  await using third = await startWorker(server.url, workerArgs);
  const dir = await Deno.makeTempDir();
  try {
    const entries = Array.from(
      { length: 30 },
      (_, i) => ({ name: `done-${i}`, script: fixture("sleep.py"), data: { seconds: 0.4, i } }),
    );
    await Deno.writeTextFile(join(dir, "jobs.jsonc"), JSON.stringify(entries));
    const env = Deno.env.toObject();
    delete env.INIT_CWD;
    const batch = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...["--allow-read", "--allow-write", "--allow-run", "--allow-env", "--allow-net"],
        CLI,
        "batch",
        join(dir, "jobs.jsonc"),
        ...["--nats", server.url, "--namespace", "done", "--attempts", "3", "--json"],
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env: { ...env, NO_COLOR: "1" },
    }).spawn();
    const stdout = new Response(batch.stdout).text();
    // The live display (one line per state change when not a terminal); kill the victim once the batch is under way.
    let stderr = "";
    let killed = false;
    for await (const text of batch.stderr.pipeThrough(new TextDecoderStream())) {
      stderr += text;
      if (!killed && (stderr.match(/: COMPLETED/g) ?? []).length >= 6) {
        killed = true;
        await victim.killGroup();
      }
    }
    const status = await batch.status;
    assert.ok(killed, `the batch ended before the kill: ${stderr}`);
    assert.equal(status.code, 0, stderr);
    const rows = JSON.parse(await stdout) as { name: string; state: string; pythonData: { slept: boolean } }[];
    assert.deepEqual(
      rows.map((row) => [row.name, row.state, row.pythonData.slept]),
      entries.map((e) => [e.name, "COMPLETED", true]),
    );
    // A job the victim had started and not finished ran again elsewhere, as a new attempt.
    const said = (kind: string) =>
      new Set(victim.output.flatMap((line) => line.match(new RegExp(` ${kind} (done-\\d+) `))?.[1] ?? []));
    const completed = said("completed");
    const abandoned = [...said("started")].filter((name) => !completed.has(name));
    for (const name of abandoned) {
      const row = (rows as unknown as { name: string; attempts: number }[]).find((row) => row.name === name)!;
      assert.ok(row.attempts >= 2, `${name} was taken from the killed worker: ${row.attempts} attempts`);
    }
    const ranOn = (worker: typeof first) => worker.output.filter((line) => /done-\d+/.test(line)).length;
    assert.ok(ranOn(first) > 0 && ranOn(third) > 0, "the other two workers ran jobs");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
