/**
 * Signed jobs and results over NATS (issue 22), with a real nats-server and a `bgproc worker` started by the CLI:
 * keys from `bgproc keygen`; a worker that trusts a host key runs only jobs that key signed (a job from a host
 * without it, or with a key the worker does not trust, is dropped and dead-lettered with the reason, and its script
 * never runs); a host that trusts worker keys does not complete a job from a record no trusted worker signed.
 */

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobDroppedError, JobManager } from "../../mod.ts";
import { NatsJobManager, runWorker } from "../../src/nats/mod.ts";
import { openCluster } from "../../src/nats/_connection.ts";
import { mutateRecord, readRecord } from "../../src/nats/_records.ts";
import { encode } from "../../src/nats/_protocol.ts";
import { fixture, waitFor } from "../_helpers.ts";
import { bgprocCommand, startNatsServer, startWorker } from "./_server.ts";

async function keygen(dir: string, name: string): Promise<void> {
  const { success, stdout, stderr } = await bgprocCommand(["keygen", join(dir, name)], {
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  assert.ok(success, new TextDecoder().decode(stderr));
  assert.match(new TextDecoder().decode(stdout), /^key \S+: .*\.key \(private.*\.pub/);
  assert.equal((await Deno.stat(join(dir, `${name}.key`))).mode! & 0o777, 0o600);
}

Deno.test("signed jobs: only jobs a trusted host signed run; a result no trusted worker signed completes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bgproc-keys-" });
  try {
    for (const name of ["host", "worker", "rogue"]) await keygen(dir, name);
    const again = await bgprocCommand(["keygen", join(dir, "host")], { stdout: "null", stderr: "piped" }).output();
    assert.equal(again.success, false, "keygen overwrote a key");
    await using server = await startNatsServer();
    const namespace = "signed";
    await using worker = await startWorker(server.url, [
      "--namespace",
      namespace,
      "--workers",
      "2",
      "--signing-key",
      join(dir, "worker.key"),
      "--trust",
      join(dir, "host.pub"),
    ]);
    const nats = (signing?: { key?: string; trust?: string[] }) => ({
      servers: server.url,
      namespace,
      ...(signing === undefined ? {} : { signing }),
    });
    await using host = await NatsJobManager.connect({
      nats: nats({ key: join(dir, "host.key"), trust: [join(dir, "worker.pub")] }),
      maxAttempts: 1,
    });
    const signed = await host.addJob({ script: fixture("echo.py"), passedData: { who: "signed" } }).result();
    assert.deepEqual(signed.pythonData.passed_data, { who: "signed" });

    // A host without a key, and one whose key the worker does not trust: neither job runs.
    for (const signing of [undefined, { key: join(dir, "rogue.key") }]) {
      await using rogue = await NatsJobManager.connect({ nats: nats(signing), maxAttempts: 1 });
      const marker = join(dir, `ran-${signing === undefined ? "unsigned" : "rogue"}`);
      const error = await rogue.addJob({ script: fixture("sleep.py"), passedData: { seconds: 0, once_marker: marker } })
        .result().then(() => undefined, (e) => e);
      assert.ok(error instanceof JobDroppedError, String(error));
      assert.equal(error.reason, "start-failed");
      assert.match(
        error.summary,
        signing === undefined ? /runs only jobs signed by a host it trusts, and it is not signed/ : /not trusted here/,
      );
      assert.equal(existsSync(marker), false, "a job no trusted host signed ran");
    }
    const letters = await host.deadLetters();
    assert.equal(letters.length, 2, JSON.stringify(letters));

    // A completed record no trusted worker signed (a forger with access to the bucket) does not complete the job.
    const told: string[] = [];
    const listening = new AbortController();
    const following = (async () => {
      for await (const event of host.events({ signal: listening.signal })) {
        if (event.type === "unreadable") told.push(event.problem);
      }
    })();
    const long = host.addJob({ name: "long", script: fixture("sleep.py"), passedData: { seconds: 30 } });
    await waitFor(() => long.state === "ACTIVE", 30_000, "the long job to start");
    const cluster = await openCluster({ servers: server.url }, namespace);
    try {
      // Its worker's signed progress is taken (the fixture says 0.1 at once); a forger's 0.99 is not.
      await waitFor(() => long.progress >= 0.1, 30_000, "the worker's signed progress");
      const { id } = (await readRecord(cluster.jobs, "long"))!.record;
      cluster.nc.publish(
        cluster.names.jobSubject("long", "progress"),
        encode({ attempt: 1, value: 0.99, id, worker: "rogue" }),
      );
      await waitFor(() => told.some((problem) => /progress value no trusted worker signed/.test(problem)), 10_000);
      assert.ok(long.progress < 0.99, "a forged progress value was taken");
      await mutateRecord(cluster.jobs, "long", (record) => ({
        ...record,
        state: "COMPLETED",
        result: { ...(signed as unknown as Record<string, unknown>), pythonData: { forged: true } } as never,
      }));
      await waitFor(() => told.some((problem) => /not signed by a trusted worker/.test(problem)), 10_000, "the note");
      assert.equal(long.state, "ACTIVE", "a forged record completed the job");
      // The host put the record back as it knew it: the job goes on, and its real end (here: a kill) still arrives.
      await long.kill();
      assert.equal(long.state, "DROPPED");
    } finally {
      listening.abort();
      await following;
      await cluster.nc.drain();
    }
    assert.ok(worker.output.some((line) => /failed job-\S+ attempt 1/.test(line)), worker.output.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a misspelt or mistyped signing or TLS option is a TypeError, never signing turned off", async () => {
  const servers = "nats://127.0.0.1:1";
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ signing: { keys: "host.key" } }, /'nats\.signing' has no option 'keys' \(it takes 'key', 'trust'\)/],
    [{ signing: { trust: "worker.pub" } }, /'nats\.signing\.trust' must be a list of paths/],
    [{ signing: "host.key" }, /'nats\.signing' must be an object/],
    [{ tls: { ca: 1 } }, /'nats\.tls\.ca' must be a path/],
    [{ pass: 1234 }, /'nats\.pass' must be a string/],
  ];
  for (const [options, why] of bad) {
    assert.throws(() => new JobManager({ nats: { servers, ...options } as never }), (error) => {
      return error instanceof TypeError && why.test(error.message);
    });
  }
  await assert.rejects(
    runWorker({ nats: { servers }, signing: { trusts: ["host.pub"] } as never }),
    (error) => error instanceof TypeError && /'signing' has no option 'trusts'/.test(error.message),
  );
  // A worker's keys go beside 'nats': the host's place for them is an error, not signing off.
  await assert.rejects(
    runWorker({ nats: { servers, signing: { trust: ["host.pub"] } } as never }),
    (error) => error instanceof TypeError && /'nats\.signing' is a host's option/.test(error.message),
  );
});
