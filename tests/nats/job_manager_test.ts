/**
 * `new JobManager({ nats })`: the local API over a NATS cluster, with real
 * `bgproc worker` processes and real Blender.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { JobDroppedError, JobManager } from "../../mod.ts";
import { fixture, waitFor } from "../_helpers.ts";
import { openCluster } from "../../src/nats/_connection.ts";
import { mutateRecord, readRecord } from "../../src/nats/_records.ts";
import { NatsJobManager } from "../../src/nats/mod.ts";
import { encode, type RecordedOutput, type RecordedResult, subjectToken } from "../../src/nats/_protocol.ts";
import { FileCache, Uploader } from "../../src/nats/_files.ts";
import { startNatsServer, startWorker, untilQueued } from "./_server.ts";

Deno.test("JobManager({ nats }) runs jobs on workers with the local API, and a new manager finds their results", async () => {
  await using server = await startNatsServer();
  const nats = { servers: server.url, namespace: "api" };
  await using _worker = await startWorker(server.url, ["--namespace", "api", "--workers", "2"]);

  const manager = new JobManager({ nats, maxAttempts: 1 });
  // The handle comes back at once, before the connection is up.
  const job = manager.addJob({ name: "steps", script: fixture("progress.py"), passedData: { steps: 4 } });
  assert.equal(job.name, "steps");
  assert.equal(manager.getJob("steps")?.name, "steps");
  const seen: number[] = [];
  for await (const progress of job.progressUpdates()) seen.push(progress);
  assert.equal(seen.at(-1), 1);
  assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
  assert.deepEqual((await job.result()).pythonData, { steps: 4 });
  assert.equal(manager.getJobState("steps"), "COMPLETED");
  assert.ok(manager.getJobNames({ state: "COMPLETED" }).includes("steps"));
  assert.equal(manager.counts.completed >= 1, true);

  const failing = manager.addJob({ name: "fails", script: fixture("raise.py") });
  const error = await failing.result().then(() => null, (e) => e);
  assert.ok(error instanceof JobDroppedError, String(error));
  assert.equal(typeof manager.getIssueString("fails"), "string");

  const sleeper = manager.addJob({ name: "sleeper", script: fixture("sleep.py") });
  for await (const progress of sleeper.progressUpdates()) if (progress > 0) break;
  await sleeper.kill();
  assert.equal(manager.getJobState("sleeper"), "DROPPED");
  await manager.close();

  // A host restarted: the result is still in the cluster.
  await using again = new JobManager({ nats });
  assert.deepEqual(await again.getRetrievedPythonData("steps"), { steps: 4 });
  assert.equal(again.getJobState("steps"), "COMPLETED");
});

Deno.test("JobManager({ nats }): close() right after addJob submits the job first, and a new host runs it to its end", async () => {
  await using server = await startNatsServer();
  const nats = { servers: server.url, namespace: "no-loss" };
  const manager = new JobManager({ nats, maxAttempts: 1 });
  // Before the connection is up: the jobs wait in the host, and close() submits them before it lets go.
  const names = ["first", "second", "third"];
  const jobs = names.map((name) => manager.addJob({ name, script: fixture("echo.py"), passedData: { name } }));
  await manager.close();
  for (const job of jobs) {
    const error = await job.result().then(() => null, (e: Error) => e);
    assert.match(String(error), /did not end before its JobManager closed/);
  }

  await using _worker = await startWorker(server.url, ["--namespace", "no-loss", "--workers", "2"]);
  await using again = new JobManager({ nats });
  await again.ready();
  for (const name of names) {
    const job = again.getJob(name);
    assert.ok(job !== undefined, `the new host does not know '${name}'`);
    assert.deepEqual((await job.result()).pythonData.passed_data, { name });
  }
});

Deno.test("JobManager({ nats }): health says why jobs cannot run (no worker, no worker with the tags, no server)", async () => {
  await using server = await startNatsServer();
  const nats = { servers: server.url, namespace: "health" };
  await using manager = new JobManager({ nats });
  const health = () => manager.health;
  const first = manager.health; // Before the connection is up no job can run.
  assert.ok(first.status === "failing" && /connecting to the NATS server/.test(first.reason), JSON.stringify(first));
  const failing = (pattern: RegExp) => waitFor(() => health().status === "failing" && pattern.test(reason()));
  const reason = () => {
    const now = health();
    return now.status === "failing" ? now.reason : "";
  };
  const events: string[] = [];
  const controller = new AbortController();
  const following = (async () => {
    for await (const event of manager.events({ signal: controller.signal })) {
      if (event.type === "health") events.push(event.health.status);
    }
  })();
  await manager.ready();

  await failing(/no worker of namespace 'health' has sent a heartbeat/);
  await using worker = await startWorker(server.url, ["--namespace", "health", "--tags", "cpu"]);
  await waitFor(() => health().status === "ok");
  assert.equal(manager.counts.availableWorkers, 2);

  const job = manager.addJob({ name: "needs-gpu", script: fixture("echo.py"), requires: ["gpu"] });
  await failing(/no live worker has the tags gpu that job 'needs-gpu' requires/);
  await job.kill();
  await waitFor(() => health().status === "ok");

  await server.stop();
  await failing(/cannot be reached/);
  await server.restart();
  await waitFor(() => health().status === "ok", 30_000);
  controller.abort();
  await following;
  // Each change is an event (after the server came back, its reconnection may pass through "no worker" first).
  assert.deepEqual(events.slice(0, 5), ["failing", "ok", "failing", "ok", "failing"]);
  await worker.stop();
});

Deno.test("JobManager({ nats }): garbage on the subjects, in the buckets and on the queue stops neither host nor worker, and each is dead-lettered with why", async () => {
  await using server = await startNatsServer();
  const namespace = "garbage";
  await using worker = await startWorker(server.url, ["--namespace", namespace, "--workers", "1"]);
  await using manager = await NatsJobManager.connect({ nats: { servers: server.url, namespace }, maxAttempts: 1 });
  const told: string[] = [];
  const listening = new AbortController();
  const following = (async () => {
    for await (const event of manager.events({ signal: listening.signal })) {
      if (event.type === "unreadable") told.push(`${event.subject}: ${event.problem}`);
    }
  })();
  // A job's lines read to the end: this host now follows log lines too.
  for await (const _ of manager.addJob({ script: fixture("echo.py") }).logs()) { /* read them all */ }
  const cluster = await openCluster({ servers: server.url }, namespace);
  try {
    const junk = [new Uint8Array([0xff, 0xfe, 0x00]), new TextEncoder().encode('{"v":1,"name":7}'), encode([1, 2])];
    const { names } = cluster;
    for (const bytes of junk) {
      cluster.nc.publish(names.jobSubject("ghost", "progress"), bytes);
      cluster.nc.publish(names.jobSubject("ghost", "log"), bytes);
      await cluster.jobs.put(subjectToken("ghost"), bytes);
      await cluster.workers.put("ghost-worker", bytes);
      await cluster.js.publish(names.queueSubject([]), bytes);
    }
    cluster.nc.publish(names.maxDeliveriesAdvisory, new TextEncoder().encode("not json"));
    await cluster.js.publish(names.deadSubject("junk"), new TextEncoder().encode("not a dead letter")); // Skipped too.
    await cluster.nc.flush();
    const job = manager.addJob({
      name: "after-garbage",
      script: fixture("progress.py"),
      passedData: { steps: 4, pause: 0.4 },
    });
    const seen: number[] = [];
    for await (const value of job.progressUpdates()) {
      if (seen.length === 0) {
        // A running job's own subjects: its host reads these (messages about jobs it does not follow it ignores).
        for (const bytes of junk) {
          cluster.nc.publish(names.jobSubject("after-garbage", "progress"), bytes);
          cluster.nc.publish(names.jobSubject("after-garbage", "log"), bytes);
        }
      }
      seen.push(value);
    }
    assert.deepEqual((await job.result()).pythonData, { steps: 4 });
    assert.equal(seen.at(-1), 1);
    assert.equal(manager.getJob("ghost"), undefined, "a record that is garbage is no job");
    assert.equal(manager.health.status, "ok");
    await waitFor(
      () => worker.output.some((line) => line.includes("unreadable: bgproc.garbage.q.any: not UTF-8")),
      10_000,
      "the worker's note",
    );
    // Each kind, with its reason, in the dead-letter stream; the dead letters of jobs are not confused with them.
    const expected = [
      ["bgproc.garbage.job.after-garbage.progress", "not UTF-8"],
      ["bgproc.garbage.job.after-garbage.progress", "a progress message must be a JSON object"],
      ["bgproc.garbage.job.after-garbage.log", "a log message needs an attempt and a line"],
      [`kv:${names.jobsBucket}/ghost`, "a job record without a name or id"],
      [`kv:${names.workersBucket}/ghost-worker`, "a worker's entry must be a JSON object"],
      ["bgproc.garbage.q.any", "a queued job must be a JSON object"],
      [names.maxDeliveriesAdvisory, "not JSON"],
    ];
    const complete = (letters: { subject: string; problem: string }[]) =>
      expected.every(([subject, problem]) => letters.some((l) => l.subject === subject && l.problem === problem));
    let letters = await manager.unreadableMessages();
    for (let i = 0; i < 100 && !complete(letters); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      letters = await manager.unreadableMessages();
    }
    for (const [subject, problem] of expected) {
      assert.ok(
        letters.some((letter) => letter.subject === subject && letter.problem === problem),
        `no dead letter for ${subject}: ${problem} in ${JSON.stringify(letters.map((l) => [l.subject, l.problem]))}`,
      );
    }
    assert.ok(
      letters.some((letter) => letter.seenBy.startsWith("worker ")) &&
        letters.some((l) => l.seenBy.startsWith("host ")),
    );
    assert.deepEqual(await manager.deadLetters(), []);
    // The host said so once per kind of subject and problem (the same garbage again says nothing new).
    assert.ok(told.includes("bgproc.garbage.job.after-garbage.progress: not UTF-8"), told.join("\n"));
    assert.equal(told.filter((line) => line.endsWith("ghost: not UTF-8")).length, 1, told.join("\n"));
    const before = told.length;
    await cluster.jobs.put(subjectToken("ghost"), junk[0]!);
    await cluster.nc.flush();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(told.length, before, "the same kind of garbage was told twice");
  } finally {
    listening.abort();
    await following;
    await cluster.nc.drain();
  }
});

Deno.test("two hosts in one namespace: generated names differ, a rejected job's removal leaves the other's, a name reused keeps its outputDir", async () => {
  await using server = await startNatsServer();
  const nats = { servers: server.url, namespace: "hosts" };
  // The worker would give a job 3 attempts: the host's 1 is what counts (the worker's Blenders never retry).
  await using _worker = await startWorker(server.url, [
    "--namespace",
    "hosts",
    "--workers",
    "2",
    "--max-attempts",
    "3",
  ]);
  const dir = await Deno.makeTempDir({ prefix: "bgproc-nats-hosts-" });
  try {
    const blendFile = join(dir, "scene.blend");
    {
      await using local = new JobManager();
      await local.addJob({ script: fixture("make_scene.py"), passedData: { out: blendFile } }).result();
    }
    await using a = new JobManager({ nats, maxAttempts: 1 });
    await using b = new JobManager({ nats, maxAttempts: 1 });
    await Promise.all([a.ready(), b.ready()]);

    const [fromA, fromB] = [a.addJob({ script: fixture("echo.py") }), b.addJob({ script: fixture("echo.py") })];
    assert.notEqual(fromA.name, fromB.name);
    await Promise.all([fromA.result(), fromB.result()]);

    const held = a.addJob({ name: "held", script: fixture("echo.py"), requires: ["nobody-has-this"] });
    const late = new JobManager({ nats }); // Not connected yet: it cannot know the name is taken.
    const clash = late.addJob({ name: "held", script: fixture("echo.py") });
    await assert.rejects(clash.result(), /queued or active in the cluster/);
    late.removeJob("held");
    await late.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(a.getJobState("held"), "QUEUED");
    assert.equal(b.getJobState("held"), "QUEUED", "the record is still in the cluster");
    await held.kill();

    const counterFile = join(dir, "attempts.json");
    const flaky = a.addJob({ script: fixture("flaky.py"), passedData: { counter_file: counterFile, fail_times: 5 } });
    await assert.rejects(flaky.result(), (error: JobDroppedError) => error.attempts === 1);
    assert.equal(JSON.parse(await Deno.readTextFile(counterFile)).length, 1, "Blender ran once");

    const [first, second] = [join(dir, "first"), join(dir, "second")];
    const note = (text: string, outputDir: string) =>
      a.addJob({ name: "note", script: fixture("write_note.py"), blendFile, passedData: { text }, outputDir });
    await note("one", first).result();
    const again = note("two", second);
    // This host's job is COMPLETED once its outputs are in place, as a local one's.
    await waitFor(() => again.state === "COMPLETED", 60_000, "the second note");
    assert.equal(await Deno.readTextFile(join(second, "note.txt")), "two");
    assert.equal(await Deno.readTextFile(join(first, "note.txt")), "one");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("JobManager({ nats }): resultLimit holds over NATS: a larger result (inline or spilled) is never read, the job drops", async () => {
  await using server = await startNatsServer();
  const namespace = "limits";
  await using _worker = await startWorker(server.url, ["--namespace", namespace, "--workers", "2"]);
  await using manager = new JobManager({
    nats: { servers: server.url, namespace },
    maxAttempts: 1,
    resultLimit: 100_000,
  });
  await manager.ready();
  const small = await manager.addJob({ script: fixture("echo.py"), passedData: { text: "x".repeat(1_000) } }).result();
  assert.equal((small.pythonData.passed_data as { text: string }).text.length, 1_000);
  // 150 KB stays in the record; 400 KB spills into the object store: both are over the limit.
  for (const size of [150_000, 400_000]) {
    const error = await manager.addJob({ script: fixture("echo.py"), passedData: { text: "x".repeat(size) } }).result()
      .then(() => undefined, (e) => e);
    assert.ok(error instanceof JobDroppedError, String(error));
    assert.equal(error.reason, "result-too-large");
    assert.match(error.summary, /more than the manager's resultLimit of 100000/);
  }
});

Deno.test("JobManager({ nats }): 2,000 outputs come back (their list spills to the object store); a forged list keeps 10,000, a file larger than recorded is not read", async () => {
  await using server = await startNatsServer();
  const namespace = "many-outputs";
  const dir = await Deno.makeTempDir({ prefix: "bgproc-nats-outputs-" });
  await using manager = new JobManager({ nats: { servers: server.url, namespace }, maxAttempts: 1 });
  const cluster = await openCluster({ servers: server.url }, namespace);
  try {
    let template: RecordedResult;
    {
      await using _worker = await startWorker(server.url, ["--namespace", namespace, "--workers", "1"]);
      const blendFile = join(dir, "scene.blend");
      {
        await using local = new JobManager();
        await local.addJob({ script: fixture("make_scene.py"), passedData: { out: blendFile } }).result();
      }
      // About 350 KB of list: more than a record holds inline (before, the record could not be written at ~5,000).
      const paths = Array.from({ length: 2_000 }, (_, i) => `frames/frame_${String(i).padStart(5, "0")}.txt`);
      const many = manager.addJob({
        script: fixture("tamper_outputs.py"),
        blendFile,
        passedData: { how: "file", paths },
        outputDir: join(dir, "real"),
      });
      const result = await many.result();
      assert.equal(result.outputs.length, 2_000);
      assert.equal(await Deno.readTextFile(join(dir, "real", "frames", "frame_01999.txt")), "x");
      template = (await readRecord(cluster.jobs, many.name))!.record.result!;
      assert.ok(template.outputsFile !== undefined && template.outputs === undefined, "the list was spilled");
    }
    const cache = new FileCache(cluster.files, join(dir, "cache"));
    const listed = JSON.parse(await Deno.readTextFile(await cache.get(template.outputsFile!))) as RecordedOutput[];
    await cache.close();
    const output = listed[0]!;
    // No worker now: a client with queue and KV access takes each job and completes its record itself.
    const forge = async (result: RecordedResult) => {
      const job = manager.addJob({ script: fixture("echo.py"), outputDir: join(dir, `forged-${crypto.randomUUID()}`) });
      await untilQueued(cluster);
      const consumer = await cluster.js.consumers.get(cluster.names.jobsStream, cluster.names.consumerName([]));
      const taken = await consumer.next({ expires: 5_000 });
      assert.ok(taken !== null, "no message");
      await mutateRecord(cluster.jobs, job.name, (record) => ({
        ...record,
        state: "COMPLETED",
        worker: "forger",
        attempts: 1,
        result,
      }));
      taken.ack();
      return await job.result().then((value) => value, (error) => error);
    };
    const list = join(dir, "list.json");
    await Deno.writeTextFile(
      list,
      JSON.stringify(Array.from({ length: 10_001 }, (_, i) => ({ ...output, path: `f${i}` }))),
    );
    const tooMany = await forge({
      ...template,
      outputsFile: await new Uploader(cluster.files).put(list, "outputs.json"),
    });
    assert.equal(tooMany.outputs?.length, 10_000, String(tooMany));
    assert.match(tooMany.stderr, /lists 10001 outputs; the first 10000 were fetched/);
    // Collecting files keeps the spilled list and every file it lists.
    {
      await using collector = await NatsJobManager.connect({ nats: { servers: server.url, namespace } });
      await collector.collectFiles({ olderThanMs: 0 });
      for (const sha256 of [template.outputsFile!.sha256, output.file.sha256]) {
        assert.ok((await cluster.files.info(sha256))?.deleted === false, `collected ${sha256}`);
      }
    }
    const { outputsFile: _, ...inline } = template;
    const larger = await forge({ ...inline, outputs: [{ ...output, file: { ...output.file, size: 0 } }] });
    assert.match(String(larger), /it is 1 bytes, not the 0 recorded/, `the size is checked before reading: ${larger}`);
  } finally {
    await cluster.nc.drain();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("JobManager({ nats }): a job killed the moment it was added leaves no message on the queue", async () => {
  await using server = await startNatsServer();
  const namespace = "kill-at-once";
  await using manager = new JobManager({ nats: { servers: server.url, namespace } });
  await manager.ready();
  const cluster = await openCluster({ servers: server.url }, namespace);
  try {
    const job = manager.addJob({ script: fixture("echo.py"), requires: ["nobody-has-this"] });
    await job.kill();
    assert.equal(job.state, "DROPPED");
    assert.equal((await cluster.jsm.streams.info(cluster.names.jobsStream)).state.messages, 0);
  } finally {
    await cluster.nc.drain();
  }
});

Deno.test("JobManager({ nats }): a worker with two tags and one slot runs one job at a time", async () => {
  await using server = await startNatsServer();
  const namespace = "one-slot";
  await using _worker = await startWorker(server.url, ["--namespace", namespace, "--workers", "1", "--tags", "a,b"]);
  await using manager = new JobManager({ nats: { servers: server.url, namespace } });
  const jobs = [[], ["a"], ["b"], ["a", "b"]].map((requires) =>
    manager.addJob({ script: fixture("sleep.py"), passedData: { seconds: 0.4 }, requires })
  );
  // Its Blender runs one at a time: no job starts before the one before it ended. (The records may show two ACTIVE
  // for a moment: a slot is free once its Blender is done, while the result is still being recorded.)
  const ran = (await Promise.all(jobs.map((job) => job.result())))
    .map((result) => [result.startedAt.getTime(), result.endedAt.getTime()] as const)
    .sort(([a], [b]) => a - b);
  for (let i = 1; i < ran.length; i++) {
    assert.ok(ran[i]![0] >= ran[i - 1]![1], `job ${i} started before job ${i - 1} ended: ${JSON.stringify(ran)}`);
  }
});

Deno.test("JobManager({ nats }): a job whose queue message a client took and acked without running it is queued again, and runs", async () => {
  await using server = await startNatsServer();
  const namespace = "abandoned";
  await using manager = new JobManager({ nats: { servers: server.url, namespace, ackWaitMs: 1_000 }, maxAttempts: 1 });
  await manager.ready();
  const job = manager.addJob({ script: fixture("echo.py"), passedData: { who: "abandoned" } });
  const cluster = await openCluster({ servers: server.url }, namespace);
  try {
    // No worker yet: a rogue client takes the message and acks it at once.
    await untilQueued(cluster);
    const consumer = await cluster.js.consumers.get(cluster.names.jobsStream, cluster.names.consumerName([]));
    let taken = null;
    for (let i = 0; i < 20 && taken === null; i++) taken = await consumer.next({ expires: 1_000 });
    assert.ok(taken !== null, "the rogue client got no message");
    await taken.ackAck();
    await using _worker = await startWorker(server.url, ["--namespace", namespace, "--workers", "1"]);
    let stalled: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      job.result(),
      new Promise<never>((_, reject) => stalled = setTimeout(() => reject(new Error("the job never ran")), 60_000)),
    ]).finally(() => clearTimeout(stalled));
    assert.deepEqual(result.pythonData.passed_data, { who: "abandoned" });
  } finally {
    await cluster.nc.drain();
  }
});

Deno.test("JobManager({ nats }): a job whose script fails to upload (written while uploaded) leaves no record and no message, and says why", async () => {
  await using server = await startNatsServer();
  const namespace = "upload-fails";
  await using manager = new JobManager({ nats: { servers: server.url, namespace }, maxAttempts: 1 });
  await manager.ready();
  const cluster = await openCluster({ servers: server.url }, namespace);
  const dir = await Deno.makeTempDir({ prefix: "bgproc-upload-fails-" });
  try {
    // The host keeps a file's hash while its size, time and inode stay: new bytes of the same size, the time put
    // back, and the store without the old hash make its next upload stream bytes that are not the hash it names.
    const script = join(dir, "job.py");
    await Deno.writeTextFile(script, "python_data = {'v': 1}\n");
    const { mtime } = await Deno.stat(script);
    const first = manager.addJob({ name: "first", script, requires: ["nobody-has-this"] });
    await untilQueued(cluster, cluster.names.queueSubject(["nobody-has-this"]));
    await first.kill();
    for (const info of await cluster.files.list()) await cluster.files.delete(info.name);
    using file = await Deno.open(script, { write: true });
    await file.write(new TextEncoder().encode("python_data = {'v': 2}\n"));
    await Deno.utime(script, mtime!, mtime!);

    // The host has seen the script in the store: the record is written while the store is asked (and the script goes
    // up again), and removed when that fails.
    const job = manager.addJob({ name: "second", script });
    const error = await job.result().then(() => null, (e: unknown) => e);
    assert.ok(error instanceof Error && /changed while it was uploaded/.test(error.message), String(error));
    assert.equal(job.state, "DROPPED");
    assert.equal(await readRecord(cluster.jobs, "second"), null);
    assert.equal((await cluster.jsm.streams.info(cluster.names.jobsStream)).state.messages, 0);
  } finally {
    await cluster.nc.drain();
    await Deno.remove(dir, { recursive: true });
  }
});
