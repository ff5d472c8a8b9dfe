/**
 * The `fork` section of `deno task bench`: fork mode's per-job time (median
 * and p99, one warm zygote, one trivial job after another) and throughput
 * with 1 and 2 slots, with its ratios to process and pool mode measured in
 * the same run.
 */

import { JobManager } from "../../mod.ts";

/** What the rest of the bench measured, for the ratios. */
export interface Baseline {
  readonly trivialScript: string;
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
  const jobMedianMs = percentile(times, 0.5);
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
    goal: "<= 25 ms median per job",
  };
}

/** The section as rows of the bench's table. */
export function forkRows(fork: ForkSection): [string, string, string][] {
  const f = (x: number, digits = 1) => x.toFixed(digits);
  return [
    ["fork per-job time, warm zygote (median)", `${f(fork.jobMedianMs)} ms`, "<= 25 ms"],
    ["fork per-job time, warm zygote (p99)", `${f(fork.jobP99Ms)} ms`, ""],
    [`fork mode, ${fork.jobs} jobs, 1 slot`, `${f(fork.workers1JobsPerSecond, 2)} jobs/s`, ""],
    [`fork mode, ${fork.jobs} jobs, 2 slots`, `${f(fork.workers2JobsPerSecond, 2)} jobs/s`, ""],
    ["  ratio fork / process, 1 slot", f(fork.forkOverProcess1, 1), ""],
    ["  ratio fork / process, 2 slots", f(fork.forkOverProcess2, 1), ""],
    ["  ratio fork / pool, 1 slot", f(fork.forkOverPool1, 2), ""],
    ["  ratio fork / pool, 2 slots", f(fork.forkOverPool2, 2), ""],
    ["  per-job median fork / pool", f(fork.jobMedianOverPool, 2), ""],
  ];
}
