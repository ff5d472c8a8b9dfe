/** Output: 100 MB without deadlock or host memory growth, bad bytes, live logs and a log file. */

import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { JobDroppedError, JobManager, type LogLine } from "../../mod.ts";
import { fixture, isAlive, MODES, waitFor } from "../_helpers.ts";

for (const mode of MODES) {
  Deno.test(`${mode}: a job printing 100 MB completes; the host keeps only the tail and its memory stays flat`, async () => {
    await using manager = new JobManager({ mode, outputLimit: 64 * 1024 });
    const rssBefore = Deno.memoryUsage().rss;
    let peak = rssBefore;
    const sampler = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 50);
    try {
      const result = await manager.addJob({ script: fixture("chatty.py"), passedData: { megabytes: 100 } }).result();
      equal(result.pythonData.megabytes, 100);
      ok(result.stdout.length <= 64 * 1024, `kept ${result.stdout.length} characters`);
      match(result.stdout, /x{99}\n$/);
      match(result.stderr, /chatty: 90 MB written/);
    } finally {
      clearInterval(sampler);
    }
    const growthMiB = (peak - rssBefore) / 2 ** 20;
    ok(growthMiB < 100, `host memory grew by ${growthMiB.toFixed(0)} MiB while the job printed 100 MB`);
  });
}

for (const mode of MODES) {
  Deno.test(`${mode}: output that is not UTF-8 is decoded with replacement characters; unicode arrives intact`, async () => {
    await using manager = new JobManager({ mode });
    const { stdout, stderr } = await manager.addJob({ script: fixture("bad_bytes.py") }).result();
    match(stdout, /ünïcode ✓ 日本語 🐒/);
    match(stdout, /bad bytes: \uFFFD\uFFFD\uFFFD end/);
    match(stderr, /stderr: ñ/);
  });
}

for (const mode of MODES) {
  Deno.test(`${mode}: job.logs() streams lines live and logFile keeps them, with a header per attempt`, async () => {
    await using manager = new JobManager({ mode });
    const logFile = join(manager.workRoot, "job.log");
    const job = manager.addJob({ script: fixture("bad_bytes.py"), logFile });
    const lines: LogLine[] = [];
    for await (const line of job.logs()) lines.push(line);
    await job.result();
    ok(lines.some((l) => l.stream === "stdout" && l.line === "ünïcode ✓ 日本語 🐒" && l.attempt === 1));
    ok(lines.some((l) => l.stream === "stderr" && l.line === "stderr: ñ"));
    const text = await Deno.readTextFile(logFile);
    match(text, /^--- bgproc: job 'job-1', attempt 1: /);
    match(text, /\nünïcode ✓ 日本語 🐒\n/);
    match(text, /\nstderr: ñ\n/);
  });
}

for (const mode of MODES) {
  Deno.test(`${mode}: a process the script puts in a session of its own does not hold the job open`, async () => {
    await using manager = new JobManager({ mode });
    const pidFile = join(manager.workRoot, "daemon.json");
    const job = manager.addJob({ script: fixture("daemon.py"), passedData: { pid_file: pidFile }, timeout: 20_000 });
    const result = await job.result();
    equal(result.pythonData.started, true);
    const { child } = JSON.parse(await Deno.readTextFile(pidFile));
    // It left Blender's process group on purpose, but Blender is its job's subreaper: it ends with the job.
    await waitFor(() => !isAlive(child), 5_000, "the daemon to end with its job");
  });
}

for (const mode of ["process", "pool", "fork"] as const) {
  Deno.test(`${mode}: a killed job's daemon that holds its output open does not hold result()`, async () => {
    await using manager = new JobManager({ mode });
    const pidFile = join(manager.workRoot, "daemon.json");
    const job = manager.addJob({
      script: fixture("daemon.py"),
      passedData: { pid_file: pidFile, hang: true, seconds: 300 },
      timeout: 3_000,
    });
    let child = 0;
    try {
      // Not a timing test: the daemon sleeps 300 s, so a result() that waits for its pipes never settles in time.
      let stalled: ReturnType<typeof setTimeout> | undefined;
      const error = await Promise.race([
        job.result().then(() => null, (error: JobDroppedError) => error),
        new Promise<string>((resolve) => stalled = setTimeout(() => resolve("stalled"), 60_000)),
      ]);
      clearTimeout(stalled);
      ok(error instanceof JobDroppedError, `result() did not settle: ${error}`);
      equal(error.reason, "timed-out");
    } finally {
      child = JSON.parse(await Deno.readTextFile(pidFile).catch(() => "{}")).child ?? 0;
      if (child > 0 && isAlive(child)) Deno.kill(child, "SIGKILL"); // Issue 20 item 2: it may outlive its job.
    }
  });
}
