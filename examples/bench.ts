// deno-lint-ignore-file no-console
/**
 * `deno task bench [--json] [--runs N] [--jobs N] [--queued N]`: measures bgproc side by side with raw
 * Blender in one run and prints ratios, medians and the machine. Reports only; it never fails.
 */

import { parseArgs } from "node:util";
import { cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { findBlender, JobManager } from "../mod.ts";
import { inotifyWatches } from "../tests/_helpers.ts";
import { benchFork, forkRows, progressLatencies } from "./bench/fork.ts";
import { benchNats, natsRows } from "./bench/nats.ts";
import { benchTelemetry, telemetryRows } from "./bench/telemetry.ts";

const { values: flags } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    runs: { type: "string", default: "7" },
    jobs: { type: "string", default: "30" },
    queued: { type: "string", default: "10000" },
  },
});
const runs = Number(flags.runs);
let jobCount = Number(flags.jobs);
const queuedCount = Number(flags.queued);
const script = (name: string) => fileURLToPath(new URL(`./bench/${name}`, import.meta.url));
const blender = findBlender();
const log = (line: string) => flags.json || console.error(line);

const median = (xs: number[]) => percentile(xs, 0.5);
function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

async function rawBlender(): Promise<number> {
  const start = performance.now();
  const { success } = await new Deno.Command(blender, {
    args: ["-b", "--factory-startup", "-noaudio", "--python", script("trivial.py")],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!success) throw new Error("raw Blender failed");
  return performance.now() - start;
}

async function oneJob(manager: JobManager): Promise<number> {
  const start = performance.now();
  await manager.addJob({ script: script("trivial.py") }).result();
  return performance.now() - start;
}

async function throughput(workers: number, mode: "process" | "pool" = "process"): Promise<number> {
  await using manager = new JobManager({ maxWorkers: workers, mode, prewarm: true });
  if (mode === "pool") { // Warm every worker first: throughput, not start-up.
    await Promise.all(Array.from({ length: workers }, () => manager.addJob({ script: script("trivial.py") }).result()));
  }
  const start = performance.now();
  await Promise.all(Array.from({ length: jobCount }, () => manager.addJob({ script: script("trivial.py") }).result()));
  return jobCount / ((performance.now() - start) / 1000);
}

// 1. Process mode per job vs raw Blender start-up, interleaved so both see the same machine load.
log(`raw Blender vs one bgproc job, ${runs} runs each, interleaved…`);
const raw: number[] = [];
const ours: number[] = [];
{
  await using manager = new JobManager({ maxWorkers: 1, mode: "process" });
  await oneJob(manager); // Warm the page cache for both.
  for (let i = 0; i < runs; i++) {
    raw.push(await rawBlender());
    ours.push(await oneJob(manager));
  }
}

// 2. Throughput, process mode and pool mode.
log(`throughput of ${jobCount} trivial jobs at 1 and 2 workers, process mode…`);
const jobsPerSecond1 = await throughput(1);
const jobsPerSecond2 = await throughput(2);
const poolJobs = Math.max(jobCount, 60);
log(`throughput of ${poolJobs} trivial jobs at 1 and 2 workers, pool mode…`);
const savedJobCount = jobCount;
jobCount = poolJobs;
const poolPerSecond1 = await throughput(1, "pool");
const poolPerSecond2 = await throughput(2, "pool");
jobCount = savedJobCount;

// 3. Pool per-job overhead: one warm worker, one trivial job after another.
log("pool per-job overhead…");
const poolJob: number[] = [];
{
  await using manager = new JobManager({ mode: "pool", maxWorkers: 1 });
  await oneJob(manager);
  for (let i = 0; i < 30; i++) poolJob.push(await oneJob(manager));
}

// 3b. Fork mode, with its ratios to the figures above.
const fork = await benchFork({
  trivialScript: script("trivial.py"),
  chattyScript: fileURLToPath(new URL("../tests/fixtures/chatty.py", import.meta.url)),
  latencyScript: script("progress_latency.py"),
  jobCount,
  processJobMedianMs: median(ours),
  poolJobMedianMs: median(poolJob),
  process1JobsPerSecond: jobsPerSecond1,
  process2JobsPerSecond: jobsPerSecond2,
  pool1JobsPerSecond: poolPerSecond1,
  pool2JobsPerSecond: poolPerSecond2,
}, log);

// 4. update_job_progress in a tight loop, and 5. progress latency Python -> Deno.
log("update_job_progress rate and latency, process mode…");
let callsPerSecond: number;
let latencies: number[];
{
  await using manager = new JobManager({ mode: "process" });
  const rate = await manager.addJob({ script: script("progress_rate.py"), passedData: { calls: 1_000_000 } }).result();
  callsPerSecond = rate.pythonData.calls_per_second as number;
  latencies = await progressLatencies(manager, script("progress_latency.py"));
}

// 5b. Many machines: a real nats-server on loopback and pool-mode workers, beside local pool mode.
log("NATS workers (nats-server on loopback)…");
const nats = await benchNats({ log });

// 5c. What OpenTelemetry costs per job, off and on.
const telemetry = await benchTelemetry({ log });

// 6. Host memory and watchers with many jobs queued.
log(`host memory with ${queuedCount} jobs queued…`);
let rssBefore: number, rssQueued: number, queueMs: number, watchersQueued: number;
{
  await using manager = new JobManager({ maxWorkers: 1 });
  rssBefore = Deno.memoryUsage().rss;
  const start = performance.now();
  for (let i = 0; i < queuedCount; i++) manager.addJob({ script: script("trivial.py"), passedData: { index: i } });
  queueMs = performance.now() - start;
  await new Promise((resolve) => setTimeout(resolve, 500));
  rssQueued = Deno.memoryUsage().rss;
  watchersQueued = inotifyWatches();
  await manager.killAll();
}

const blenderVersion = new TextDecoder().decode(
  (await new Deno.Command(blender, { args: ["--version"], stderr: "null" }).output()).stdout,
).split("\n")[0];
const cpu = cpus();
const report = {
  machine: {
    cpu: cpu[0]?.model ?? "unknown",
    cores: cpu.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    deno: Deno.version.deno,
    blender: blenderVersion,
  },
  processMode: {
    rawBlenderMedianMs: median(raw),
    jobMedianMs: median(ours),
    ratio: median(ours) / median(raw),
    goal: "<= 1.05",
  },
  throughput: {
    processWorkers1JobsPerSecond: jobsPerSecond1,
    processWorkers2JobsPerSecond: jobsPerSecond2,
    poolWorkers1JobsPerSecond: poolPerSecond1,
    poolWorkers2JobsPerSecond: poolPerSecond2,
    poolOverProcess1: poolPerSecond1 / jobsPerSecond1,
    poolOverProcess2: poolPerSecond2 / jobsPerSecond2,
    goal: "pool / process >= 50",
  },
  pool: { jobMedianMs: median(poolJob), jobP99Ms: percentile(poolJob, 0.99), goal: "<= 6 ms median" },
  fork,
  nats,
  telemetry,
  progress: {
    callsPerSecond,
    callsGoal: ">= 1000000",
    latencyP50Ms: percentile(latencies, 0.5),
    latencyP99Ms: percentile(latencies, 0.99),
    latencySamples: latencies.length,
    latencyGoal: "p50 <= 5, p99 <= 25",
  },
  queue: {
    jobs: queuedCount,
    timeToQueueMs: queueMs,
    rssGrowthMiB: (rssQueued - rssBefore) / 2 ** 20,
    rssMiB: rssQueued / 2 ** 20,
    inotifyWatchesWhileQueued: watchersQueued,
    goal: "<= 100 MB, watchers <= running jobs",
  },
};

if (flags.json) {
  console.log(JSON.stringify(report, null, 2));
} else {
  const f = (x: number, digits = 1) => x.toFixed(digits);
  const rows: [string, string, string][] = [
    ["raw Blender start-up (median)", `${f(median(raw), 0)} ms`, ""],
    ["bgproc process-mode job (median)", `${f(median(ours), 0)} ms`, ""],
    ["  ratio job / raw Blender", f(report.processMode.ratio, 3), "<= 1.05"],
    [`process mode, ${jobCount} jobs, 1 worker`, `${f(jobsPerSecond1, 2)} jobs/s`, ""],
    [`process mode, ${jobCount} jobs, 2 workers`, `${f(jobsPerSecond2, 2)} jobs/s`, ""],
    [`pool mode, ${poolJobs} jobs, 1 worker`, `${f(poolPerSecond1, 2)} jobs/s`, ""],
    [`pool mode, ${poolJobs} jobs, 2 workers`, `${f(poolPerSecond2, 2)} jobs/s`, ""],
    ["  ratio pool / process, 1 worker", f(poolPerSecond1 / jobsPerSecond1, 1), ">= 50"],
    ["  ratio pool / process, 2 workers", f(poolPerSecond2 / jobsPerSecond2, 1), ">= 50"],
    ["pool per-job time, warm (median)", `${f(median(poolJob))} ms`, "<= 6 ms"],
    ...forkRows(fork),
    ...natsRows(nats).map(([measure, value, goal]) => [measure!, value!, goal!] as [string, string, string]),
    ...telemetryRows(telemetry),
    ["update_job_progress calls/s", f(callsPerSecond, 0), ">= 1,000,000"],
    ["progress latency, process, p50", `${f(report.progress.latencyP50Ms)} ms`, "<= 5 ms"],
    ["progress latency, process, p99", `${f(report.progress.latencyP99Ms)} ms`, "<= 25 ms"],
    [`time to queue ${queuedCount} jobs`, `${f(queueMs, 0)} ms`, ""],
    [`host RSS growth, ${queuedCount} queued`, `${f(report.queue.rssGrowthMiB)} MiB`, "<= 100 MB"],
    ["inotify watches while queued (1 running)", String(watchersQueued), "<= running jobs"],
  ];
  console.log(
    `machine: ${report.machine.cpu}, ${report.machine.cores} cores, ${report.machine.memoryGiB} GiB; ` +
      `Deno ${report.machine.deno}; ${report.machine.blender}`,
  );
  const width = Math.max(...rows.map(([name]) => name.length));
  console.log(`${"measure".padEnd(width)}  ${"value".padStart(16)}  goal`);
  for (const [name, value, goal] of rows) console.log(`${name.padEnd(width)}  ${value.padStart(16)}  ${goal}`);
}
