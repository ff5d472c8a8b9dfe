/**
 * The `fork` section of `deno task bench`: fork mode's per-job time (median
 * and p99, one warm zygote, one trivial job after another), throughput with 1
 * and 2 slots, the first job of a cold manager, a job printing 100 MB and
 * progress latency, each with its ratio to process (and pool) mode measured
 * in the same run.
 */

import { JobManager } from "../../mod.ts";

/** What the rest of the bench measured, for the ratios. */
export interface Baseline {
  readonly trivialScript: string;
  /** Prints `megabytes` MB to stdout. */
  readonly chattyScript: string;
  /** Reports progress `steps` times and returns when it sent each. */
  readonly latencyScript: string;
  readonly jobCount: number;
  readonly processJobMedianMs: number;
  readonly poolJobMedianMs: number;
  readonly process1JobsPerSecond: number;
  readonly process2JobsPerSecond: number;
  readonly pool1JobsPerSecond: number;
  readonly pool2JobsPerSecond: number;
}

/** The fork section of the report. */
export interface ForkSection {
  jobMedianMs: number;
  jobP99Ms: number;
  jobs: number;
  workers1JobsPerSecond: number;
  workers2JobsPerSecond: number;
  jobMedianOverProcess: number;
  jobMedianOverPool: number;
  forkOverProcess1: number;
  forkOverProcess2: number;
  forkOverPool1: number;
  forkOverPool2: number;
  /** A cold manager's first job (the zygote's start included), median of `runs`. */
  coldFirstJobMs: number;
  coldOverProcessJob: number;
  /** A job printing 100 MB, medians, interleaved. */
  chattyForkMs: number;
  chattyProcessMs: number;
  chattyForkOverProcess: number;
  progressLatencyP50Ms: number;
  progressLatencyP99Ms: number;
  goal: string;
}

function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

async function oneJob(manager: JobManager, script: string): Promise<number> {
  const start = performance.now();
  await manager.addJob({ script }).result();
  return performance.now() - start;
}

async function throughput(workers: number, script: string, jobs: number): Promise<number> {
  await using manager = new JobManager({ maxWorkers: workers, mode: "fork", prewarm: true });
  await Promise.all(Array.from({ length: workers }, () => manager.addJob({ script }).result())); // A warm zygote.
  const start = performance.now();
  await Promise.all(Array.from({ length: jobs }, () => manager.addJob({ script }).result()));
  return jobs / ((performance.now() - start) / 1000);
}

/** A cold manager's first trivial job in fork mode: the zygote's start-up, then the fork. */
async function coldFirstJob(script: string): Promise<number> {
  const start = performance.now();
  await using manager = new JobManager({ mode: "fork", maxWorkers: 1 });
  await manager.addJob({ script }).result();
  return performance.now() - start;
}

/** One job printing 100 MB on an already warm manager. */
async function chatty(manager: JobManager, script: string): Promise<number> {
  const start = performance.now();
  await manager.addJob({ script, passedData: { megabytes: 100 } }).result();
  return performance.now() - start;
}

/** Milliseconds from a script's `update_job_progress` to the host's progress event, per step. */
export async function progressLatencies(manager: JobManager, script: string): Promise<number[]> {
  const job = manager.addJob({ script, passedData: { steps: 60, pause: 0.03 } });
  const received = new Map<number, number>();
  for await (const value of job.progressUpdates()) received.set(value, performance.timeOrigin + performance.now());
  const { pythonData } = await job.result();
  const latencies: number[] = [];
  for (const [value, sentAt] of pythonData.sent as [number, number][]) {
    const at = received.get(value);
    if (at !== undefined && value < 1) latencies.push(at - sentAt);
  }
  return latencies;
}

/** Measure fork mode; `log` gets a line per step. */
export async function benchFork(base: Baseline, log: (line: string) => void): Promise<ForkSection> {
  log("fork per-job time, warm zygote…");
  const times: number[] = [];
  {
    await using manager = new JobManager({ mode: "fork", maxWorkers: 1 });
    await oneJob(manager, base.trivialScript);
    for (let i = 0; i < 100; i++) times.push(await oneJob(manager, base.trivialScript));
  }
  const jobs = Math.max(base.jobCount, 60);
  log(`throughput of ${jobs} trivial jobs at 1 and 2 slots, fork mode…`);
  const workers1JobsPerSecond = await throughput(1, base.trivialScript, jobs);
  const workers2JobsPerSecond = await throughput(2, base.trivialScript, jobs);
  log("fork: a cold manager's first job, 5 runs…");
  const cold: number[] = [];
  for (let i = 0; i < 5; i++) cold.push(await coldFirstJob(base.trivialScript));
  log("a job printing 100 MB, fork and process mode, 3 runs each, interleaved…");
  const chattyFork: number[] = [];
  const chattyProcess: number[] = [];
  {
    await using forkManager = new JobManager({ mode: "fork", maxWorkers: 1, prewarm: true });
    await using processManager = new JobManager({ mode: "process", maxWorkers: 1 });
    await oneJob(forkManager, base.trivialScript);
    for (let i = 0; i < 3; i++) {
      chattyFork.push(await chatty(forkManager, base.chattyScript));
      chattyProcess.push(await chatty(processManager, base.chattyScript));
    }
  }
  log("progress latency, fork mode…");
  let latencies: number[];
  {
    await using manager = new JobManager({ mode: "fork", maxWorkers: 1, prewarm: true });
    latencies = await progressLatencies(manager, base.latencyScript);
  }
  const jobMedianMs = percentile(times, 0.5);
  const coldFirstJobMs = percentile(cold, 0.5);
  const chattyForkMs = percentile(chattyFork, 0.5);
  const chattyProcessMs = percentile(chattyProcess, 0.5);
  return {
    jobMedianMs,
    jobP99Ms: percentile(times, 0.99),
    jobs,
    workers1JobsPerSecond,
    workers2JobsPerSecond,
    jobMedianOverProcess: jobMedianMs / base.processJobMedianMs,
    jobMedianOverPool: jobMedianMs / base.poolJobMedianMs,
    forkOverProcess1: workers1JobsPerSecond / base.process1JobsPerSecond,
    forkOverProcess2: workers2JobsPerSecond / base.process2JobsPerSecond,
    forkOverPool1: workers1JobsPerSecond / base.pool1JobsPerSecond,
    forkOverPool2: workers2JobsPerSecond / base.pool2JobsPerSecond,
    coldFirstJobMs,
    coldOverProcessJob: coldFirstJobMs / base.processJobMedianMs,
    chattyForkMs,
    chattyProcessMs,
    chattyForkOverProcess: chattyForkMs / chattyProcessMs,
    progressLatencyP50Ms: percentile(latencies, 0.5),
    progressLatencyP99Ms: percentile(latencies, 0.99),
    goal: "<= 18 / 30 ms per job (median / p99); >= 80 jobs/s at 2 slots; cold, 100 MB <= 1.1 x process",
  };
}

/** The section as rows of the bench's table. */
export function forkRows(fork: ForkSection): [string, string, string][] {
  const f = (x: number, digits = 1) => x.toFixed(digits);
  return [
    ["fork per-job time, warm zygote (median)", `${f(fork.jobMedianMs)} ms`, "<= 18 ms"],
    ["fork per-job time, warm zygote (p99)", `${f(fork.jobP99Ms)} ms`, "<= 30 ms"],
    [`fork mode, ${fork.jobs} jobs, 1 slot`, `${f(fork.workers1JobsPerSecond, 2)} jobs/s`, ""],
    [`fork mode, ${fork.jobs} jobs, 2 slots`, `${f(fork.workers2JobsPerSecond, 2)} jobs/s`, ">= 80 jobs/s"],
    ["fork, a cold manager's first job (median of 5)", `${f(fork.coldFirstJobMs, 0)} ms`, ""],
    ["  ratio to a process-mode job", f(fork.coldOverProcessJob, 3), "<= 1.1"],
    [
      "a job printing 100 MB, fork / process (medians)",
      `${f(fork.chattyForkMs, 0)} / ${f(fork.chattyProcessMs, 0)} ms`,
      "",
    ],
    ["  ratio fork / process", f(fork.chattyForkOverProcess, 3), "<= 1.1"],
    ["progress latency, fork, p50", `${f(fork.progressLatencyP50Ms)} ms`, ""],
    ["progress latency, fork, p99", `${f(fork.progressLatencyP99Ms)} ms`, "<= 5 ms"],
    ["  ratio fork / process, 1 slot", f(fork.forkOverProcess1, 1), ""],
    ["  ratio fork / process, 2 slots", f(fork.forkOverProcess2, 1), ""],
    ["  ratio fork / pool, 1 slot", f(fork.forkOverPool1, 2), ""],
    ["  ratio fork / pool, 2 slots", f(fork.forkOverPool2, 2), ""],
    ["  per-job median fork / pool", f(fork.jobMedianOverPool, 2), ""],
  ];
}
