/**
 * Least privilege on a real nats-server: the configuration `bgproc nats-config` prints (TLS that verifies clients,
 * a host role and a worker role, passwords from the server's environment). A host and a worker do everything a job
 * needs (files both ways, progress, logs, a kill) without one refused subject; a worker's credentials cannot add a
 * job, pull-side subjects are closed to a host's, and a worker cannot make a namespace.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { JobManager } from "../../mod.ts";
import { NatsConnectionError, runWorker } from "../../src/nats/mod.ts";
import { fixture } from "../_helpers.ts";
import { bgprocCommand, startWorker } from "./_server.ts";
import { clientTls, freePort, makeCertificates, startConfiguredServer } from "./_tls.ts";

/** Whether the server refuses `subject` to `nc` (a request to it fails with a permissions violation). */
async function refused(nc: NatsConnection, subject: string): Promise<boolean> {
  try {
    await nc.request(subject, new TextEncoder().encode("{}"), { timeout: 2_000 });
    return false;
  } catch (error) {
    return /Permissions Violation/.test(String(error));
  }
}

Deno.test("nats-config's roles: host and worker do all a job needs and nothing of the other's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bgproc-nats-roles-" });
  let server: Deno.ChildProcess | undefined;
  try {
    await makeCertificates(dir);
    const port = freePort();
    const made = await bgprocCommand([
      "nats-config",
      "--namespace",
      "roles",
      "--listen",
      `127.0.0.1:${port}`,
      "--store-dir",
      join(dir, "store"),
      "--host-user",
      "host",
      "--worker-user",
      "worker",
      "--server-cert",
      join(dir, "server.pem"),
      "--server-key",
      join(dir, "server-key.pem"),
      "--client-ca",
      join(dir, "ca.pem"),
    ], { stdout: "piped", stderr: "piped" }).output();
    assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
    const config = new TextDecoder().decode(made.stdout);
    assert.doesNotMatch(config, /host-secret|worker-secret/, "no password in the file");
    await Deno.writeTextFile(join(dir, "nats.conf"), config);
    await Deno.writeTextFile(join(dir, "worker.pass"), "worker-secret\n");
    const log = join(dir, "nats.log");
    server = await startConfiguredServer(dir, port, {
      env: { BGPROC_HOST_PASSWORD: "host-secret", BGPROC_WORKER_PASSWORD: "worker-secret" },
      log,
    });
    const url = `tls://127.0.0.1:${port}`;
    const tls = clientTls(dir);
    const asHost = { servers: url, namespace: "roles", tls, user: "host", pass: "host-secret" };
    const asWorker = { ...asHost, user: "worker", pass: "worker-secret" };
    // A worker's credentials on the command line (`bgproc worker`, and `bgproc run` trying them as a host's).
    const workerFlags = [
      "--tls-ca",
      tls.ca,
      "--tls-cert",
      tls.cert,
      "--tls-key",
      tls.key,
      "--user",
      "worker",
      "--password-file",
      join(dir, "worker.pass"),
    ];
    const violations = async () => (await Deno.readTextFile(log)).split("\n").filter((line) => /Violation/.test(line));

    // A worker cannot make the namespace: a host must come first.
    await assert.rejects(
      runWorker({ nats: asWorker, maxWorkers: 1 }),
      (error) => error instanceof NatsConnectionError && /not made yet.*start a host/.test(error.message),
    );
    const before = (await violations()).length;

    await using host = new JobManager({ nats: asHost });
    await host.ready();
    await using _worker = await startWorker(url, [
      "--namespace",
      "roles",
      "--workers",
      "1",
      ...workerFlags,
    ]);
    // Files both ways (a .blend and a script in, an output back), progress, log lines, a kill.
    const blendFile = join(dir, "scene.blend");
    {
      await using local = new JobManager();
      await local.addJob({ script: fixture("make_scene.py"), passedData: { out: blendFile } }).result();
    }
    const outputDir = join(dir, "out");
    const note = await host.addJob({
      script: fixture("write_note.py"),
      blendFile,
      passedData: { text: "in role" },
      outputDir,
    }).result();
    assert.equal(note.outputs.length, 1);
    assert.equal(await Deno.readTextFile(join(outputDir, "note.txt")), "in role");
    const progress = host.addJob({ script: fixture("chatty.py"), passedData: { megabytes: 1 } });
    const lines = (async () => {
      let count = 0;
      for await (const _line of progress.logs()) count++;
      return count;
    })();
    await progress.result();
    assert.ok(await lines > 0, "log lines came through");
    const rising = host.addJob({ script: fixture("progress.py"), passedData: { steps: 3 } });
    const seen: number[] = [];
    for await (const value of rising.progressUpdates()) seen.push(value);
    assert.ok(seen.some((value) => value > 0 && value < 1), `progress seen: ${seen}`);
    const sleeper = host.addJob({ script: fixture("sleep.py"), passedData: { seconds: 60 } });
    while (host.getJobState(sleeper.name) !== "ACTIVE") await new Promise((resolve) => setTimeout(resolve, 50));
    await sleeper.kill();
    assert.equal(host.getJobState(sleeper.name), "DROPPED");
    assert.deepEqual((await violations()).slice(before), [], "a host and a worker in their roles are refused nothing");

    // A worker's credentials cannot add a job, and the refused job leaves no record behind.
    {
      await using rogue = new JobManager({ nats: asWorker });
      const job = rogue.addJob({ name: "rogue", script: fixture("echo.py") });
      await assert.rejects(
        job.result(),
        (error) => error instanceof NatsConnectionError && /may not add jobs/.test(error.message),
      );
    }
    const known = () => {
      try {
        return host.getJobState("rogue");
      } catch {
        return "unknown";
      }
    };
    for (let i = 0; i < 100 && known() !== "unknown"; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(known(), "unknown", "the rogue's record is gone");
    assert.deepEqual(
      (await host.addJob({ name: "rogue", script: fixture("echo.py"), passedData: { ok: 1 } }).result()).pythonData
        .passed_data,
      { ok: 1 },
      "the name is free",
    );
    // The same from a terminal: one line saying so, exit 3 (it was an uncaught error with a stack trace).
    const fromCli = await bgprocCommand([
      "run",
      fixture("echo.py"),
      "--nats",
      url,
      "--namespace",
      "roles",
      ...workerFlags,
    ], { stdout: "piped", stderr: "piped" }).output();
    const said = new TextDecoder().decode(fromCli.stderr);
    assert.equal(fromCli.code, 3, said);
    assert.match(said, /^bgproc: .*these credentials may not add jobs/m);
    assert.doesNotMatch(said, /Uncaught|\n\s+at /);
    // A host's credentials cannot run a worker.
    await assert.rejects(
      runWorker({ nats: asHost, maxWorkers: 1 }),
      (error) => error instanceof NatsConnectionError && /may not run a worker/.test(error.message),
    );

    // Subject by subject, with the plain client.
    const client = (user: string, pass: string) =>
      connect({ servers: url, user, pass, tls: { caFile: tls.ca, certFile: tls.cert, keyFile: tls.key } });
    const hostNc = await client("host", "host-secret");
    const workerNc = await client("worker", "worker-secret");
    try {
      for (
        const subject of [
          "$JS.API.CONSUMER.MSG.NEXT.BGPROC_roles_JOBS.bgproc-any", // take a job
          "$KV.bgproc_roles_workers.fake", // advertise a worker
          "bgproc.roles.job.x.progress", // say a job's progress
          "$JS.API.STREAM.DELETE.BGPROC_roles_JOBS", // delete the queue
        ]
      ) assert.ok(await refused(hostNc, subject), `a host may not publish to ${subject}`);
      for (
        const subject of [
          "bgproc.roles.q.any", // add a job
          "$JS.API.STREAM.MSG.DELETE.BGPROC_roles_JOBS", // remove a queued job
          "$JS.API.STREAM.PURGE.BGPROC_roles_JOBS", // empty the queue
          "bgproc.roles.job.x.cancel", // kill a job
          "$JS.API.STREAM.CREATE.BGPROC_other_JOBS", // make a namespace
          "$JS.API.CONSUMER.DELETE.BGPROC_roles_JOBS.bgproc-any", // stop the queue's consumer
        ]
      ) assert.ok(await refused(workerNc, subject), `a worker may not publish to ${subject}`);
    } finally {
      await hostNc.close();
      await workerNc.close();
    }
  } finally {
    if (server !== undefined) {
      server.kill("SIGTERM");
      await server.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
});
