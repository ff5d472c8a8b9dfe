/** The NATS wire contract without Blender: names, tag subsets, and results recorded once under contention. */

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join, relative } from "node:path";
import { JobManager } from "../../mod.ts";
import { FileCache, Uploader } from "../../src/nats/_files.ts";
import { checkTags, nameOfToken, Names, subjectToken, tagSubsets } from "../../src/nats/_protocol.ts";
import { type Cluster, DEAD_LETTER_BYTES, openCluster } from "../../src/nats/_connection.ts";
import { UNREADABLE_PER_MINUTE, UnreadableDesk } from "../../src/nats/_unreadable.ts";
import { OverdueWatch } from "../../src/nats/_overdue.ts";
import { readJobRecord, readProgress, readQueueMessage, Unreadable } from "../../src/nats/_wire.ts";
import { ended, mutateRecord, readRecord } from "../../src/nats/_records.ts";
import type { JobRecord } from "../../src/nats/_protocol.ts";
import { encode, RECORD_VERSION } from "../../src/nats/_protocol.ts";
import { startNatsServer } from "./_server.ts";

Deno.test("job names map to one subject token (and KV key) and back; a key no name makes is no name", () => {
  for (const name of ["a", "shot.010", "x-y_z.1.2", "test1.py_Würfel", "レンダー 010", "a*b>c d~e"]) {
    assert.match(subjectToken(name), /^[-=\w]+$/); // one token, and a key nats.js's KV accepts
    assert.equal(nameOfToken(subjectToken(name)), name);
  }
  assert.equal(nameOfToken("shot.010"), undefined); // a key of an older host (raw names) is skipped
  const names = new Names("default");
  assert.equal(names.jobSubject("shot.010", "cancel"), "bgproc.default.job.shot=2E010.cancel");
  assert.equal(names.queueSubject([]), "bgproc.default.q.any");
  assert.equal(names.queueSubject(["blender-5", "gpu"]), "bgproc.default.q.t.blender-5.gpu");
  assert.notEqual(names.consumerName(["a_b"]), names.consumerName(["a", "b"]));
});

Deno.test("a queue message may carry the attempts spent before it (a job its host queued again), and only a count", () => {
  const read = (value: unknown) => readQueueMessage(encode(value));
  assert.deepEqual(read({ name: "a", id: "1" }), { name: "a", id: "1" });
  assert.deepEqual(read({ name: "a", id: "1", spent: 2 }), { name: "a", id: "1", spent: 2 });
  for (const spent of [-1, 1.5, "2", null]) {
    const unreadable = read({ name: "a", id: "1", spent });
    assert.ok(unreadable instanceof Unreadable && /spent/.test(unreadable.problem), `spent ${spent}`);
  }
});

Deno.test("each priority and set of tags is a lane of the queue: its subject, its consumer, and back; a subject no lane has is none", () => {
  const names = new Names("default");
  const lanes = [
    { requires: [], priority: 0 },
    { requires: ["gpu"], priority: 0 },
    { requires: [], priority: 5 },
    { requires: ["blender-5", "gpu"], priority: -999_999_999 },
    { requires: ["p"], priority: 999_999_999 },
  ];
  for (const lane of lanes) assert.deepEqual(names.laneOf(names.queueSubject(lane.requires, lane.priority)), lane);
  assert.equal(names.queueSubject([], 5), "bgproc.default.q.p.5.any");
  assert.equal(names.queueSubject(["gpu"], -2), "bgproc.default.q.p.-2.t.gpu");
  const consumers = lanes.map((lane) => names.consumerName(lane.requires, lane.priority));
  assert.equal(new Set(consumers).size, lanes.length);
  assert.equal(names.consumerName([], 0), "bgproc-any");
  for (const name of consumers) assert.match(name, /^[-\w]+$/); // one token: no '.', '*' or '>'
  // Garbage on a queue subject (a client with publish rights) is no lane: a worker does not pull from it.
  for (
    const subject of [
      "bgproc.default.q.p.abc.any",
      "bgproc.default.q.p.0.any",
      "bgproc.default.q.p.05.any",
      "bgproc.default.q.p.1234567890.any",
      "bgproc.default.q.p.1",
      "bgproc.default.q.t",
      "bgproc.default.q.t.gpu.big",
      "bgproc.default.q.t.gpu.gpu",
      "bgproc.default.q.any.more",
      "bgproc.other.q.any",
    ]
  ) assert.equal(names.laneOf(subject), null, subject);
});

Deno.test("a queue message and a record say how often the job moved lanes (a count); a record's priority is an integer of at most 9 digits; a first message may carry its record", () => {
  assert.deepEqual(readQueueMessage(encode({ name: "a", id: "1", moves: 2 })), { name: "a", id: "1", moves: 2 });
  assert.ok(readQueueMessage(encode({ name: "a", id: "1", moves: -1 })) instanceof Unreadable);
  const record = (extra: Record<string, unknown>) =>
    readJobRecord(encode({
      v: RECORD_VERSION,
      name: "a",
      id: "1",
      state: "QUEUED",
      worker: null,
      attempts: 0,
      maxAttempts: 1,
      progress: 0,
      spec: {},
      submittedAt: "2026-01-01T00:00:00Z",
      ...extra,
    }));
  assert.ok(!(record({ priority: -7, moves: 1 }) instanceof Unreadable));
  // A first message may carry its record at its revision (a worker claims it without a read); a record that is not
  // readable, or not this job's, is left out (the worker reads the bucket), and the message stays readable.
  const good = JSON.parse(JSON.stringify(record({})));
  const carried = readQueueMessage(encode({ name: "a", id: "1", revision: 7, record: good }));
  assert.ok(!(carried instanceof Unreadable) && carried.revision === 7 && carried.record?.name === "a");
  for (const [revision, embedded] of [[7, { ...good, id: "2" }], [7, { ...good, v: 99 }], [0, good], [-1, good]]) {
    const read = readQueueMessage(encode({ name: "a", id: "1", revision, record: embedded }));
    assert.deepEqual(read, { name: "a", id: "1" });
  }
  for (const bad of [{ priority: 1.5 }, { priority: "9" }, { priority: 1e10 }, { moves: 0.5 }, { moves: -1 }]) {
    assert.ok(record(bad) instanceof Unreadable, JSON.stringify(bad));
  }
});

Deno.test("a worker's tags satisfy every subset of them; tags are checked and sorted", () => {
  assert.deepEqual(tagSubsets(checkTags("x", "tags", ["gpu", "big", "gpu"])), [[], ["big"], ["gpu"], ["big", "gpu"]]);
  assert.throws(() => checkTags("Cannot add job", "requires", ["has space"]), RangeError);
  assert.throws(() => checkTags("Cannot add job", "requires", ["a.b"]), RangeError);
});

Deno.test("a result recorded twice (two workers after a redelivery) is recorded once", async () => {
  await using server = await startNatsServer();
  const cluster = await openCluster({ servers: server.url }, "records");
  try {
    const now = new Date().toISOString();
    const record = recordOf({ name: "twice", state: "ACTIVE", worker: "w1", attempts: 2, maxAttempts: 3 });
    await cluster.jobs.create("twice", encode(record));
    const complete = (worker: string) =>
      mutateRecord(cluster.jobs, "twice", (current) => {
        if (current.id !== record.id || ended(current)) return null;
        return {
          ...current,
          state: "COMPLETED",
          worker,
          result: {
            pythonData: { by: worker },
            dataBlocks: null,
            stdout: "",
            stderr: "",
            attempts: 2,
            startedAt: now,
            endedAt: now,
            durationMs: 0,
            commandLine: "",
            worker,
          },
        };
      });
    const written = await Promise.all(["w1", "w2", "w3"].map(complete));
    assert.equal(written.filter((w) => w !== null).length, 1);
    const stored = await readRecord(cluster.jobs, "twice");
    const winner = written.find((w) => w !== null)!;
    assert.equal(stored?.record.state, "COMPLETED");
    assert.deepEqual(stored?.record.result?.pythonData, { by: winner.worker });
  } finally {
    await cluster.nc.close();
  }
});

Deno.test("the file cache starts no read once closing, and close() waits for the reads under way", async () => {
  // nats.js reads an object through a push consumer whose idle-heartbeat interval is started before it subscribes:
  // a read begun while the connection drains leaks that interval. With the op sanitizer on, this test fails if one
  // outlives it.
  await using server = await startNatsServer();
  const cluster = await openCluster({ servers: server.url }, "files");
  const dir = await Deno.makeTempDir({ prefix: "bgproc-file-cache-" });
  try {
    const source = join(dir, "source.bin");
    await Deno.writeFile(source, new Uint8Array(300_000).map((_, i) => i % 251));
    const ref = await new Uploader(cluster.files).put(source, "data.bin");
    const cache = new FileCache(cluster.files, join(dir, "cache"));
    const first = cache.get(ref);
    const under = cache.get({ ...ref, name: "other.bin" }); // A second name: a second read.
    const closed = cache.close();
    const late = cache.get({ ...ref, name: "late.bin" });
    await closed;
    // What a host or worker does next: close the connection. No read may still be starting.
    await cluster.nc.drain();
    // Each read ended one way or the other before close() settled: finished, or refused with the reason.
    for (const read of [first, under]) {
      const outcome = await read.then((path) => path, (error: Error) => error.message);
      assert.ok(outcome.endsWith("data.bin") || outcome.endsWith("other.bin") || /closing/.test(outcome), outcome);
    }
    await assert.rejects(late, /late\.bin.*the NATS connection is closing/);
  } finally {
    if (!cluster.nc.isClosed()) await cluster.nc.drain();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a completed record's outputs land only inside the job's folder: '..', absolute and empty paths are left, with notes", async () => {
  await using server = await startNatsServer();
  const cluster = await openCluster({ servers: server.url }, "hostile");
  const dir = await Deno.makeTempDir({ prefix: "bgproc-hostile-" });
  try {
    const source = join(dir, "payload.txt");
    await Deno.writeTextFile(source, "payload");
    const file = await new Uploader(cluster.files).put(source, "payload.txt");
    const now = new Date().toISOString();
    const outputs = ["../escape.txt", "/tmp/absolute.txt", "sub/../../up.txt", ".", "frames/ok.txt"]
      .map((path) => ({ file, path, bytes: 7, kind: "other" as const }));
    const record = recordOf({
      name: "hostile",
      state: "COMPLETED",
      worker: "w1",
      attempts: 1,
      maxAttempts: 1,
      progress: 1,
      result: {
        pythonData: {},
        dataBlocks: null,
        stdout: "",
        stderr: "",
        attempts: 1,
        startedAt: now,
        endedAt: now,
        durationMs: 1,
        commandLine: "blender",
        worker: "w1",
        outputs,
      },
    });
    await cluster.jobs.create(subjectToken("hostile"), encode(record));
    const workDir = join(dir, "host");
    await Deno.mkdir(workDir);
    await using manager = new JobManager({ nats: { servers: server.url, namespace: "hostile" }, workDir });
    await manager.ready();
    const result = await manager.getJob("hostile")!.result();
    assert.deepEqual(result.outputs.map((output) => relative(manager.workRoot, output.path)), [
      join("outputs", subjectToken("hostile"), "submission-1", "frames", "ok.txt"),
    ]);
    assert.equal(result.stderr.match(/is not a relative path; it was left/g)?.length, 4, result.stderr);
    assert.equal(existsSync(join(dir, "escape.txt")) || existsSync("/tmp/absolute.txt"), false);
    assert.deepEqual([...Deno.readDirSync(workDir)].length, 1, "nothing beside the host's work root");
  } finally {
    await cluster.nc.drain();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A job record of submission `submission-1`, as a host would have written it, with `fields` over it. */
function recordOf(fields: Partial<JobRecord> & Pick<JobRecord, "name">): JobRecord {
  const now = new Date().toISOString();
  return {
    v: RECORD_VERSION,
    id: "submission-1",
    state: "QUEUED",
    worker: null,
    attempts: 0,
    maxAttempts: 1,
    progress: 0,
    spec: {
      script: { sha256: "0".repeat(64), name: "s.py", size: 0 },
      blendFile: null,
      passedData: {},
      args: [],
      timeoutMs: 0,
      passedDataBlocks: null,
      requires: [],
      retry: { on: [], delayMs: 0, factor: 1, maxDelayMs: 0 },
    },
    queueSeq: 1,
    submittedAt: now,
    updatedAt: now,
    result: null,
    report: null,
    deadLetter: false,
    ...fields,
  };
}

Deno.test("an unreadable message is told once per kind and problem, and a flood is dead-lettered at most 60 a minute", () => {
  // A stand-in for the cluster: only what the desk uses (the real dead letters: tests/nats/job_manager_test.ts).
  const published: unknown[] = [];
  const cluster = {
    names: new Names("flood"),
    js: {
      publish: (_subject: string, data: Uint8Array) =>
        Promise.resolve(published.push(JSON.parse(new TextDecoder().decode(data)))),
    },
  } as unknown as Cluster;
  const told: string[] = [];
  const desk = new UnreadableDesk(cluster, "host 1", ({ subject, problem }) => told.push(`${subject}: ${problem}`));
  for (let i = 0; i < 500; i++) {
    const subject = `bgproc.flood.job.job-${i}.progress`;
    desk.report(subject, readProgress(new Uint8Array([0xff])) as Unreadable, new Uint8Array([0xff]));
  }
  desk.report("kv:bgproc_flood_jobs/x", readJobRecord(new TextEncoder().encode("[]")) as Unreadable, new Uint8Array(2));
  assert.deepEqual(told, [
    "bgproc.flood.job.job-0.progress: not UTF-8",
    "kv:bgproc_flood_jobs/x: a job record must be a JSON object",
  ]);
  assert.equal(published.length, UNREADABLE_PER_MINUTE);
  assert.equal(desk.uncounted, 501 - UNREADABLE_PER_MINUTE);
  assert.deepEqual(Object.keys(published[0] as object).sort(), [
    "at",
    "bytes",
    "excerpt",
    "kind",
    "problem",
    "seenBy",
    "subject",
  ]);
});

Deno.test("the dead-letter stream is bounded: the newest 256 MiB stay, a flood pushes out the oldest", async () => {
  await using server = await startNatsServer();
  const cluster = await openCluster({ servers: server.url }, "bounded");
  try {
    const { config } = await cluster.jsm.streams.info(cluster.names.deadStream);
    assert.equal(config.max_bytes, DEAD_LETTER_BYTES);
    assert.equal(config.discard, "old");
  } finally {
    await cluster.nc.drain();
  }
});

Deno.test("a host times a long timeout in steps: a timeout past a timer's 24.8 days does not end the attempt at once", async () => {
  const watch = new OverdueWatch(null as unknown as Cluster, 1_000, () => {});
  const record = {
    name: "long",
    id: "1",
    attempts: 1,
    worker: "w",
    state: "ACTIVE",
    maxAttempts: 1,
    queueSeq: 1,
    spec: { timeoutMs: 2 ** 31 - 1, retry: { on: [] }, requires: [] },
  } as unknown as JobRecord;
  watch.see(record);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(watch.expired, 0);
  await watch.close();
});
