/**
 * The JobManager against real Blender on every backend (process, pool and fork mode, and a NATS cluster with one
 * worker): data in, results out, progress, errors, kills, limits, retries.
 */

import { deepStrictEqual, equal, match, ok, rejects, throws } from "node:assert/strict";
import { basename, join } from "node:path";
import { JobDroppedError, JobManager } from "../mod.ts";
import { BACKEND_NAMES, managerOn, startSharedCluster } from "./_backends.ts";
import { fixture, forkChildren, isAlive, processesMatching, waitFor, watchMax } from "./_helpers.ts";

await startSharedCluster(); // Before any test: its processes are no test's resources.

/** A script's path as Blender saw it: the file itself locally, a cached copy of it on a NATS worker. */
function seenAs(mode: string, path: string): (seen: unknown) => boolean {
  return (seen) => mode === "nats" ? String(seen).endsWith(`/${basename(path)}`) : seen === path;
}

for (const mode of BACKEND_NAMES) {
  Deno.test(`${mode}: passed data with quotes, newlines, unicode, nesting and 10 MB arrives intact and round-trips`, async () => {
    await using manager = await managerOn(mode);
    const passedData = {
      quote: `it's "quoted" \\ back'slash """ '''`,
      newlines: "line 1\nline 2\r\nline 3\n",
      unicode: "ünïcode — 日本語 🐒 \u0000 \u2028",
      nested: { list: [1, 2.5, -3e10, true, false, null, { deep: ["x"] }], empty: {}, none: null },
      "not an identifier": 1,
      class: "a keyword",
      big: "x".repeat(10 * 1024 * 1024),
    };
    const job = manager.addJob({ script: fixture("echo.py"), passedData, args: ["--size", "2", "--", "x y"] });
    const { pythonData, stdout, attempts } = await job.result();
    equal(attempts, 1);
    deepStrictEqual(pythonData.passed_data, passedData);
    equal(pythonData.module_passed_data_is_same, true);
    deepStrictEqual(pythonData.variables, {
      quote: passedData.quote,
      newlines: passedData.newlines,
      unicode: passedData.unicode,
      nested: passedData.nested,
      big: passedData.big,
    });
    equal(pythonData.name, "__main__");
    ok(seenAs(mode, fixture("echo.py"))(pythonData.file), String(pythonData.file));
    deepStrictEqual(pythonData.argv_after_dashes, ["--size", "2", "--", "x y"]);
    equal(pythonData.object_count, 0, "a job without blendFile starts in an empty scene");
    deepStrictEqual(pythonData.passed_data_blocks, []);
    equal(pythonData.source_blend_file, null);
    match(stdout, /echo done: ünïcode ✓/);
    equal(manager.getJobState(job.name), "COMPLETED");
    deepStrictEqual(await manager.getRetrievedPythonData(job.name), pythonData);
  });

  Deno.test(`${mode}: progress events arrive in order and end at 1`, async () => {
    await using manager = await managerOn(mode);
    const job = manager.addJob({ script: fixture("progress.py"), passedData: { steps: 5, pause: 0.1 } });
    const seen: number[] = [];
    for await (const value of job.progressUpdates()) seen.push(value);
    deepStrictEqual(seen, [...seen].sort((a, b) => a - b), `not rising: ${seen}`);
    equal(seen.at(-1), 1);
    ok(seen.length >= 3, `expected most of the 5 steps to be seen, got ${seen}`);
    equal(manager.getJobProgress(job.name), 1);
    deepStrictEqual((await job.result()).pythonData, { steps: 5 });
  });

  Deno.test(`${mode}: update_job_progress is coalesced: a tight loop writes the file a few times, and its last value arrives`, async () => {
    await using manager = await managerOn(mode);
    const job = manager.addJob({ script: fixture("progress_flood.py"), passedData: { calls: 300_000 } });
    const seen: number[] = [];
    for await (const value of job.progressUpdates()) seen.push(value);
    const { pythonData } = await job.result();
    ok((pythonData.writes_during_loop as number) < 3_000, `one write per call? ${pythonData.writes_during_loop}`);
    ok(seen.includes(0.75), `the last value, 0.75, never arrived: ${seen.slice(-5).join(", ")}`);
  });

  Deno.test(`${mode}: a raising script is DROPPED with its traceback in the report`, async () => {
    await using manager = await managerOn(mode);
    const job = manager.addJob({ name: "raiser", script: fixture("raise.py"), passedData: { value: "q'uote" } });
    const error = await job.result().then(() => undefined, (error) => error);
    ok(error instanceof JobDroppedError);
    equal(error.reason, "error");
    equal(error.jobName, "raiser");
    equal(error.attempts, 1);
    equal(error.pythonError?.type, "ValueError");
    equal(error.pythonError?.message, "bad value: q'uote ünïcode");
    deepStrictEqual(error.pythonError?.frames.map((frame) => frame.function), ["<module>", "explode"]);
    ok(seenAs(mode, fixture("raise.py"))(error.pythonError?.frames[0]?.file), error.pythonError?.frames[0]?.file);
    const report = manager.getIssueString("raiser") ?? "";
    match(report, /Traceback \(most recent call last\)/);
    match(report, /raise\.py", line 9, in <module>/);
    match(report, /ValueError: bad value: q'uote ünïcode/);
    // The report names the Blender and Python the attempt ran in, as `blenderVersion()` does (the worker's over NATS).
    const version = mode === "nats" ? error.blender!.split(" (")[0]! : await manager.blenderVersion();
    match(version, /^\d+\.\d+/);
    ok(error.blender?.startsWith(`${version} (Python 3.`), error.blender);
    ok(report.includes(`--- blender ---\nBlender ${version} (Python 3.`), report);
    match(error.stdoutTail, /about to raise/);
    equal(manager.getJobState("raiser"), "DROPPED");
    await rejects(manager.getRetrievedPythonData("raiser"), RangeError);
  });

  Deno.test(`${mode}: a SyntaxError is DROPPED with the file and line in the report`, async () => {
    await using manager = await managerOn(mode);
    const job = manager.addJob({ script: fixture("syntax_error.py") });
    const error = await job.result().then(() => undefined, (error) => error);
    ok(error instanceof JobDroppedError);
    equal(error.reason, "error");
    equal(error.pythonError?.type, "SyntaxError");
    match(error.report, /syntax_error\.py", line 2/);
  });

  Deno.test(`${mode}: python_data that JSON cannot carry is an error naming the key`, async () => {
    await using manager = await managerOn(mode);
    const error = await manager.addJob({ script: fixture("bad_python_data.py") }).result().then(
      () => undefined,
      (error) => error,
    );
    ok(error instanceof JobDroppedError);
    equal(error.reason, "error");
    equal(error.pythonError?.origin, "result");
    match(error.message, /python_data\['not_json'\]/);
  });

  Deno.test(`${mode}: a timeout kills Blender and reports timed-out`, async () => {
    await using manager = await managerOn(mode);
    const pidFile = join(manager.workRoot, "sleep.pid");
    // The timeout counts from the attempt's start, Blender's start-up included, and the script must have written its
    // pid before it: 5 s was too short for a Blender start-up with several test files on 2 cores. A warm mode starts
    // its Blender first (a job that runs at once), so only the job itself is timed; process mode gets 12 s.
    if (mode !== "process") await manager.addJob({ script: fixture("echo.py") }).result();
    const timeout = mode === "process" ? 12_000 : 4_000;
    const job = manager.addJob({ script: fixture("sleep.py"), passedData: { pid_file: pidFile }, timeout });
    const error = await job.result().then(() => undefined, (error) => error);
    ok(error instanceof JobDroppedError);
    equal(error.reason, "timed-out");
    const pid = Number(await Deno.readTextFile(pidFile));
    equal(isAlive(pid), false, "Blender still runs after its timeout");
    equal(manager.getJobState(job.name), "DROPPED");
  });

  Deno.test(`${mode}: killJob ends the Blender process and drops the job as killed`, async () => {
    await using manager = await managerOn(mode);
    const pidFile = join(manager.workRoot, "kill.pid");
    const job = manager.addJob({ name: "sleeper", script: fixture("sleep.py"), passedData: { pid_file: pidFile } });
    for await (const value of job.progressUpdates()) if (value >= 0.1) break;
    const pid = Number(await Deno.readTextFile(pidFile));
    ok(isAlive(pid));
    await manager.killJob("sleeper");
    equal(isAlive(pid), false, "Blender still runs after killJob resolved");
    await rejects(job.result(), (error: JobDroppedError) => error.reason === "killed");
  });

  Deno.test(`${mode}: an aborted signal kills a running job and a queued one`, async () => {
    await using manager = await managerOn(mode, { maxWorkers: 1 });
    const controller = new AbortController();
    const pidFile = join(manager.workRoot, "abort.pid");
    const running = manager.addJob({
      script: fixture("sleep.py"),
      passedData: { pid_file: pidFile },
      signal: controller.signal,
    });
    // Over NATS the worker has a free slot: the second job stays queued as no worker has its tag.
    const requires = mode === "nats" ? ["no-worker-has-this"] : [];
    const queued = manager.addJob({ script: fixture("sleep.py"), signal: controller.signal, requires });
    await waitFor(() => running.progress >= 0.1, 20_000, "the job to start");
    equal(queued.state, "QUEUED");
    const pid = Number(await Deno.readTextFile(pidFile));
    controller.abort();
    await rejects(running.result(), (error: JobDroppedError) => error.reason === "killed");
    await rejects(queued.result(), (error: JobDroppedError) => error.reason === "killed" && error.attempts === 0);
    equal(isAlive(pid), false);
    const after = manager.addJob({ script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } });
    equal((await after.result()).pythonData.steps, 1, "the manager still runs jobs after a kill");
  });

  if (mode === "nats") {
    Deno.test(`nats: maxWorkers is each worker's --workers, not the host's: setting it throws and changes nothing`, async () => {
      await using manager = await managerOn(mode);
      throws(() => manager.maxWorkers = 3, /the workers have their slots/);
      equal(manager.maxWorkers, 2);
      const job = manager.addJob({ script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } });
      deepStrictEqual((await job.result()).pythonData, { steps: 1 });
    });
  } else {
    Deno.test(`${mode}: with maxWorkers 2, six jobs never run more than two Blender processes at once`, async () => {
      await using manager = await managerOn(mode, { maxWorkers: 2 });
      const count = mode === "fork"
        ? () => forkChildren(manager.workRoot).length
        : () => processesMatching(manager.workRoot, Deno.pid).length;
      const watch = watchMax(count, 10);
      const jobs = Array.from(
        { length: 6 },
        (_, i) => manager.addJob({ name: `limit-${i}`, script: fixture("sleep.py"), passedData: { seconds: 0.3 } }),
      );
      equal(manager.counts.queued + manager.counts.active, 6);
      const results = await Promise.all(jobs.map((job) => job.result()));
      const max = watch.stop();
      equal(results.length, 6);
      equal(max, 2, `at most two at once, and two did run together: saw ${max}`);
      deepStrictEqual(manager.counts, { queued: 0, active: 0, completed: 6, dropped: 0, availableWorkers: 2 });
      deepStrictEqual(manager.getJobNames({ state: "COMPLETED" }), jobs.map((job) => job.name));
    });
  }

  Deno.test(`${mode}: with maxAttempts 3 a script failing twice completes on its third attempt, earlier Blenders reaped`, async () => {
    await using manager = await managerOn(mode, { maxAttempts: 3 });
    const counterFile = join(manager.workRoot, "attempts.json");
    const job = manager.addJob({
      script: fixture("flaky.py"),
      passedData: { counter_file: counterFile, fail_times: 2 },
    });
    const result = await job.result();
    equal(result.attempts, 3);
    equal(result.pythonData.attempts_seen, 3);
    const records = result.pythonData.records as { pid: number; earlier_alive: number[] }[];
    if (mode !== "pool") {
      deepStrictEqual(
        records.map((record) => record.earlier_alive),
        [[], [], []],
        "an earlier attempt was still alive",
      );
      for (const record of records) equal(isAlive(record.pid), false);
    }
  });

  Deno.test(`${mode}: with maxAttempts 2 a script that always fails is dropped after two attempts`, async () => {
    await using manager = await managerOn(mode, { maxAttempts: 2 });
    const counterFile = join(manager.workRoot, "attempts.json");
    const job = manager.addJob({
      script: fixture("flaky.py"),
      passedData: { counter_file: counterFile, fail_times: 5 },
    });
    await rejects(job.result(), (error: JobDroppedError) => error.attempts === 2 && error.reason === "error");
    equal(JSON.parse(await Deno.readTextFile(counterFile)).length, 2);
  });

  Deno.test(`${mode}: a blendFile job sees the file's objects, and the file's bytes are unchanged`, async () => {
    await using manager = await managerOn(mode);
    const blend = join(manager.workRoot, "scene.blend");
    const made = await manager.addJob({ script: fixture("make_scene.py"), passedData: { out: blend } }).result();
    deepStrictEqual(made.pythonData.objects, ["Alpha", "Beta"]);
    const before = await Deno.readFile(blend);
    const { pythonData } = await manager.addJob({ script: fixture("use_scene.py"), blendFile: blend }).result();
    deepStrictEqual(pythonData.objects, ["Alpha", "Beta"]);
    ok(seenAs(mode, blend)(pythonData.source_blend_file), String(pythonData.source_blend_file));
    ok(pythonData.working_file !== blend, "the job must work on a private copy");
    deepStrictEqual(await Deno.readFile(blend), before, "the original .blend was changed");
  });
}

Deno.test("reusing a job name right away never shares a job directory", async () => {
  await using manager = new JobManager({ maxWorkers: 2 });
  for (let i = 0; i < 4; i++) {
    const job = manager.addJob({ name: "same", script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } });
    equal((await job.result()).attempts, 1);
  }
});

Deno.test("an old handle does not kill the new job that reused its name", async () => {
  await using manager = new JobManager();
  const first = manager.addJob({ name: "reused", script: fixture("progress.py"), passedData: { steps: 1, pause: 0 } });
  await first.result();
  const second = manager.addJob({ name: "reused", script: fixture("progress.py"), passedData: { steps: 2 } });
  await first.kill();
  equal((await second.result()).pythonData.steps, 2);
});

Deno.test("scripts run as a real __main__ module; bgproc works from threads and takes any real number", async () => {
  await using manager = new JobManager();
  const job = manager.addJob({ script: fixture("python_features.py") });
  const { pythonData } = await job.result();
  deepStrictEqual(pythonData, { restored_size: 2.5, thread_errors: [], main_is_module: true });
});

Deno.test("the report keeps a chained exception's cause", async () => {
  await using manager = new JobManager();
  const error = await manager.addJob({ script: fixture("raise_chained.py") }).result().then(() => undefined, (e) => e);
  ok(error instanceof JobDroppedError);
  match(error.report, /FileNotFoundError: .*\/no\/such\/settings\.json/);
  match(error.report, /direct cause of the following exception/);
  match(error.report, /RuntimeError: could not load the settings/);
  ok(!error.report.includes("_runner.py"), "bgproc's own frames leak into the report");
});
