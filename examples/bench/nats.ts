// deno-lint-ignore-file no-console
/**
 * The `nats` section of the bench: a real nats-server on a loopback port and
 * up to three local worker processes (pool mode, one slot each), measured
 * side by side with a local pool manager in one run. `bench.ts` calls
 * {@linkcode benchNats}; `deno task bench:nats [--json]` runs it alone.
 * Reports only; it never fails on a goal.
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { type AddJobOptions, type Job, JobManager, type JobResult } from "../../mod.ts";
import { NatsJobManager } from "../../src/nats/mod.ts";
import { type Cluster, openCluster } from "../../src/nats/_connection.ts";
import { readRecord } from "../../src/nats/_records.ts";
import { startNatsServer, startWorker, type WorkerProcess } from "../../tests/nats/_server.ts";
import { cpuBetween, type CpuSnapshot, cpuSnapshot } from "./_cpu.ts";

/** A median and a 99th percentile, ms. */
export interface Spread {
  p50: number;
  p99: number;
}

/** One throughput run: `workers` × `slotsPerWorker` slots on `jobs` jobs. */
export interface ScalingRun {
  workers: number;
  slotsPerWorker: number;
  jobs: number;
  jobsPerSecond: number;
  /** `jobsPerSecond` ÷ what slots that never waited would do (sleeping jobs only). */
  ofIdeal: number;
  /** CPU time per job, ms, by process over the run (`NaN` where `/proc` cannot tell). */
  cpuPerJob: CpuPerJob;
}

/**
 * CPU time per job by process, ms: the host (the bench's own process, or the local pool's manager), the workers'
 * processes, the Blenders they (or the local pool) run, and nats-server (0 locally).
 */
export interface CpuPerJob {
  host: number;
  workers: number;
  blenders: number;
  server: number;
}

/** What the nats section measured. */
export interface NatsBench {
  /** Median round trip of a trivial job, local pool mode, ms. */
  localPoolJobMs: number;
  /** Median round trip of a trivial job through NATS to a pool-mode worker, ms. */
  natsPoolJobMs: number;
  /** Submit → ACTIVE on the host (its events), trivial jobs one at a time on a warm worker, p50 / p99, ms. */
  pickupP50Ms: number;
  pickupP99Ms: number;
  /** The same, polled, for a job added right after the last one was killed (its worker's Blender restarting). */
  pickupAfterKill: Spread;
  /** kill() of a running job → its record DROPPED (Blender gone on the worker), p50 / p99, ms. */
  cancelP50Ms: number;
  cancelP99Ms: number;
  /** 0.5 s sleeping jobs on 1, 2 and 3 workers of one slot, and 8 slots (2 workers × 4). */
  sleeping: ScalingRun[];
  /** Trivial jobs on 8 slots (throughput bound). */
  trivial: ScalingRun;
  /** The 8-slot run's jobs on a local pool of 8 Blenders: the machine's own ceiling for 8 slots. */
  localEightSlots: ScalingRun;
  /**
   * Where a job's time goes (the trivial jobs run one at a time), from the worker's times in the record: addJob →
   * the worker got the message; → Blender started it; script end → result ready to write; → the host's result();
   * and (in the throughput runs) a slot's idle time between one job's result and its next message.
   */
  phases: Record<"submitToPickup" | "pickupToStart" | "endToRecorded" | "recordedToHost" | "slotIdle", Spread>;
}

const script = (name: string) => fileURLToPath(new URL(`./${name}`, import.meta.url));
const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 1));
}

/** One job's times, epoch ms: the host's, and the worker's from its record. */
interface JobTimes {
  worker: string;
  submitted: number;
  received: number;
  started: number;
  ended: number;
  recorded: number;
  done: number;
}

const epochMs = () => performance.timeOrigin + performance.now();
const spread = (xs: number[]): Spread => ({ p50: percentile(xs, 0.5), p99: percentile(xs, 0.99) });

/** A job run: its name, result, and when it was added and its result came (epoch ms). */
interface Ran {
  name: string;
  result: JobResult;
  submitted: number;
  done: number;
}

/** Run `job` on `manager`. */
async function timed(manager: JobManager, job: AddJobOptions): Promise<Ran> {
  const submitted = epochMs();
  const added = manager.addJob(job);
  const result = await added.result();
  return { name: added.name, result, submitted, done: epochMs() };
}

/** A job's times, its worker's from its record. */
async function withWorkerTimes(cluster: Cluster, { name, result, submitted, done }: Ran): Promise<JobTimes> {
  const record = (await readRecord(cluster.jobs, name))?.record;
  const times = record?.result?.times;
  if (times === undefined) throw new Error(`no worker times in the record of ${name}`);
  return {
    worker: record!.worker ?? "",
    submitted,
    received: times.received,
    started: result.startedAt.getTime(),
    ended: result.endedAt.getTime(),
    recorded: times.recorded,
    done,
  };
}

/**
 * How long a slot stood idle between a job's end in Blender and its next message, per worker: each job takes the
 * slot that freed first (a sweep in the order the worker got the messages); a worker's first jobs, one per slot,
 * have no gap.
 */
function idleGaps(all: JobTimes[], slotsPerWorker: number): number[] {
  const gaps: number[] = [];
  for (const times of Map.groupBy(all, (each) => each.worker).values()) {
    const free: number[] = []; // When each busy slot frees, once its job ended.
    for (const job of [...times].sort((a, b) => a.received - b.received)) {
      if (free.length === slotsPerWorker) {
        free.sort((a, b) => a - b);
        gaps.push(Math.max(0, job.received - free.shift()!));
      }
      free.push(job.ended);
    }
  }
  return gaps;
}

/**
 * CPU per job over a run, from two snapshots: this process (the host with the bench's own work, or the local pool's
 * manager), `workers` and their Blenders (or, with no workers, this process's local pools' Blenders), and the server
 * (counted 0 for a local run, where it idles).
 */
function perJob(
  before: CpuSnapshot,
  after: CpuSnapshot,
  jobs: number,
  server: number | undefined,
  workers: readonly WorkerProcess[],
): CpuPerJob {
  const host = cpuBetween(before, after, Deno.pid);
  const serverCpu = server === undefined ? 0 : cpuBetween(before, after, server, true);
  if (workers.length === 0) {
    // The local pools' Blenders are this process's children, and so is the server: everything under it but that.
    const blenders = cpuBetween(before, after, Deno.pid, true) - host - serverCpu;
    return { host: host / jobs, workers: 0, blenders: blenders / jobs, server: 0 };
  }
  const own = workers.reduce((sum, worker) => sum + cpuBetween(before, after, worker.pid), 0);
  const trees = workers.reduce((sum, worker) => sum + cpuBetween(before, after, worker.pid, true), 0);
  return { host: host / jobs, workers: own / jobs, blenders: (trees - own) / jobs, server: serverCpu / jobs };
}

/** `count` 0.5 s jobs on a local pool of `slots` Blenders, warm (two rounds of short jobs first). */
async function localScaling(slots: number, count: number, server: number | undefined): Promise<ScalingRun> {
  await using pool = new JobManager({ mode: "pool", maxWorkers: slots, prewarm: true });
  const batch = (n: number, seconds: number) =>
    Promise.all(
      Array.from({ length: n }, () => pool.addJob({ script: script("sleep.py"), passedData: { seconds } }).result()),
    );
  await batch(2 * slots, 0.2);
  const before = cpuSnapshot();
  const begin = performance.now();
  await batch(count, 0.5);
  const jobsPerSecond = count / ((performance.now() - begin) / 1000);
  return {
    workers: 1,
    slotsPerWorker: slots,
    jobs: count,
    jobsPerSecond,
    ofIdeal: jobsPerSecond / (slots / 0.5),
    cpuPerJob: perJob(before, cpuSnapshot(), count, server, []),
  };
}

/**
 * Run the nats section.
 *
 * @param options `runs`: samples per latency; `jobs`: sleeping jobs per throughput run; `log` for progress lines.
 * @returns The measures.
 */
export async function benchNats(
  options: { runs?: number; jobs?: number; log?: (line: string) => void } = {},
): Promise<NatsBench> {
  const runs = options.runs ?? 20;
  const jobs = options.jobs ?? 12;
  const log = options.log ?? (() => {});
  await using server = await startNatsServer();
  const workers: WorkerProcess[] = [];
  const start = async (slots: number) =>
    workers.push(await startWorker(server.url, ["--mode", "pool", "--workers", String(slots)]));
  const cluster = await openCluster({ servers: server.url }, "default");
  const serial: JobTimes[] = [];
  const idle: number[] = [];
  try {
    await start(1);
    await using manager = await NatsJobManager.connect({ nats: { servers: server.url }, maxAttempts: 1 });
    await using local = new JobManager({ mode: "pool", maxWorkers: 1, prewarm: true });

    log("nats: trivial jobs, local pool vs NATS pool worker");
    const localMs: number[] = [];
    const natsMs: number[] = [];
    await local.addJob({ script: script("trivial.py") }).result();
    await manager.addJob({ script: script("trivial.py") }).result();
    // Round trips as a script runs them (add, await the result), local and NATS in turn so that both see the same
    // machine; the worker's times are read from the records once all ran.
    const ran: Ran[] = [];
    for (let i = 0; i < runs; i++) {
      const begin = performance.now();
      await local.addJob({ script: script("trivial.py") }).result();
      localMs.push(performance.now() - begin);
      const each = await timed(manager, { script: script("trivial.py") });
      natsMs.push(each.done - each.submitted);
      ran.push(each);
    }
    for (const each of ran) serial.push(await withWorkerTimes(cluster, each));
    // Pickup: when the host's events say the job is ACTIVE (its worker claimed it), on a warm, idle worker. Apart from
    // the round trips: listening to the events is the bench's own work on the host.
    const pickup: number[] = [];
    for (let i = 0; i < runs; i++) {
      const events = manager.events();
      const submitted = epochMs();
      const job = manager.addJob({ script: script("trivial.py") });
      for await (const event of events) {
        if (event.type === "state" && event.name === job.name && event.state === "ACTIVE") break;
      }
      pickup.push(epochMs() - submitted);
      await job.result();
    }

    log("nats: cancel latency (and pickup right after a kill)");
    const pickupAfterKill: number[] = [];
    const cancel: number[] = [];
    for (let i = 0; i < runs; i++) {
      const begin = performance.now();
      const job: Job = manager.addJob({ script: script("sleep.py"), passedData: { seconds: 600 } });
      await until(() => job.state !== "QUEUED");
      pickupAfterKill.push(performance.now() - begin);
      for await (const progress of job.progressUpdates()) if (progress > 0) break;
      const killAt = performance.now();
      await job.kill();
      cancel.push(performance.now() - killAt);
    }

    const run = async (layout: [number, number], count: number, file: string): Promise<ScalingRun> => {
      const [workerCount, slotsPerWorker] = layout;
      while (workers.length > 0 && workers.length > workerCount) await workers.pop()![Symbol.asyncDispose]();
      while (workers.length < workerCount) await start(slotsPerWorker);
      await until(() => manager.counts.availableWorkers >= workerCount * slotsPerWorker);
      // Measured warm, as a farm runs: two rounds of short jobs first, so that every slot's Blender has started.
      const slots = workerCount * slotsPerWorker;
      await Promise.all(
        Array.from(
          { length: 2 * slots },
          () => manager.addJob({ script: script("sleep.py"), passedData: { seconds: 0.2 } }).result(),
        ),
      );
      log(`nats: ${count} jobs (${file}) on ${workerCount} worker(s) × ${slotsPerWorker} slot(s)`);
      const before = cpuSnapshot();
      const begin = performance.now();
      const ran = await Promise.all(Array.from({ length: count }, () => timed(manager, { script: script(file) })));
      const jobsPerSecond = count / ((performance.now() - begin) / 1000);
      const cpuPerJob = perJob(before, cpuSnapshot(), count, server.pid, workers);
      // The worker's times from the records, once the run is measured (reading them is the bench's own work).
      const times: JobTimes[] = [];
      for (const each of ran) times.push(await withWorkerTimes(cluster, each));
      idle.push(...idleGaps(times, slotsPerWorker));
      return {
        workers: workerCount,
        slotsPerWorker,
        jobs: count,
        jobsPerSecond,
        ofIdeal: jobsPerSecond / (slots / 0.5),
        cpuPerJob,
      };
    };
    const sleeping: ScalingRun[] = [];
    for (const count of [1, 2, 3]) sleeping.push(await run([count, 1], jobs, "sleep.py"));
    // Workers of 4 slots from here on: the one-slot ones go.
    while (workers.length > 0) await workers.pop()![Symbol.asyncDispose]();
    sleeping.push(await run([2, 4], 32, "sleep.py"));
    const trivial = await run([2, 4], 200, "trivial.py");
    trivial.ofIdeal = NaN;
    // The same 32 jobs on a local pool of 8 Blenders: what this machine's cores allow 8 slots, without NATS.
    while (workers.length > 0) await workers.pop()![Symbol.asyncDispose]();
    const localEight = await localScaling(8, 32, server.pid);
    return {
      localEightSlots: localEight,
      localPoolJobMs: percentile(localMs, 0.5),
      natsPoolJobMs: percentile(natsMs, 0.5),
      pickupP50Ms: percentile(pickup, 0.5),
      pickupP99Ms: percentile(pickup, 0.99),
      pickupAfterKill: spread(pickupAfterKill),
      cancelP50Ms: percentile(cancel, 0.5),
      cancelP99Ms: percentile(cancel, 0.99),
      sleeping,
      trivial,
      phases: {
        submitToPickup: spread(serial.map((t) => t.received - t.submitted)),
        pickupToStart: spread(serial.map((t) => t.started - t.received)),
        endToRecorded: spread(serial.map((t) => t.recorded - t.ended)),
        recordedToHost: spread(serial.map((t) => t.done - t.recorded)),
        slotIdle: spread(idle),
      },
    };
  } finally {
    for (const worker of workers) await worker[Symbol.asyncDispose]();
    await cluster.nc.drain().catch(() => {});
  }
}

/** A row of CPU ms per job by process (`local`: the manager and its Blenders). */
function cpuRow(what: string, cpu: CpuPerJob | undefined, local = false): string[] {
  if (cpu === undefined) return [what, "-", "", ""];
  const total = cpu.host + cpu.workers + cpu.blenders + cpu.server;
  const part = (x: number) => x.toFixed(1);
  if (local) {
    return [`${what}: manager + Blenders`, `${part(cpu.host)} + ${part(cpu.blenders)} = ${part(total)} ms`, "", ""];
  }
  return [
    `${what}: host + workers + Blenders + nats-server`,
    `${part(cpu.host)} + ${part(cpu.workers)} + ${part(cpu.blenders)} + ${part(cpu.server)} = ${part(total)} ms`,
    "",
    "",
  ];
}

/** The section as table rows: measure, measured, goal, met. */
export function natsRows(bench: NatsBench): string[][] {
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const ratio = bench.natsPoolJobMs / bench.localPoolJobMs;
  const layout = (run: ScalingRun) => `${run.workers}×${run.slotsPerWorker}`;
  const oneSlot = bench.sleeping.filter((run) => run.slotsPerWorker === 1);
  const eight = bench.sleeping.find((run) => run.workers * run.slotsPerWorker === 8);
  const phase = (what: string, spread: Spread) => [what, `${ms(spread.p50)} / ${ms(spread.p99)}`, "", ""];
  return [
    [
      "trivial job round trip, NATS pool worker ÷ local pool (medians)",
      `${ms(bench.natsPoolJobMs)} / ${ms(bench.localPoolJobMs)} = ${ratio.toFixed(2)}`,
      "≤ 1.3",
      ratio <= 1.3 ? "yes" : "no",
    ],
    [
      "trivial job round trip, NATS pool worker − local pool (medians)",
      ms(bench.natsPoolJobMs - bench.localPoolJobMs),
      "",
      "",
    ],
    [
      "pickup latency, submit → ACTIVE on a warm worker, p50 / p99",
      `${ms(bench.pickupP50Ms)} / ${ms(bench.pickupP99Ms)}`,
      "≤ 5 / ≤ 15 ms",
      bench.pickupP50Ms <= 5 && bench.pickupP99Ms <= 15 ? "yes" : "no",
    ],
    [
      "pickup right after a kill (the worker's Blender restarting), p50 / p99",
      `${ms(bench.pickupAfterKill.p50)} / ${ms(bench.pickupAfterKill.p99)}`,
      "",
      "",
    ],
    [
      "cancel latency, kill() → DROPPED, p50 / p99",
      `${ms(bench.cancelP50Ms)} / ${ms(bench.cancelP99Ms)}`,
      "p99 ≤ 50 ms",
      bench.cancelP99Ms <= 50 ? "yes" : "no",
    ],
    [
      `0.5 s jobs, ${oneSlot.map(layout).join(" / ")} slots: jobs/s ÷ ideal`,
      oneSlot.map((run) => `${run.jobsPerSecond.toFixed(2)} (${run.ofIdeal.toFixed(3)})`).join(" / "),
      "≥ 0.95 each",
      oneSlot.every((run) => run.ofIdeal >= 0.95) ? "yes" : "no",
    ],
    [
      `0.5 s jobs, 8 slots (${eight === undefined ? "-" : layout(eight)}): jobs/s ÷ ideal`,
      eight === undefined ? "-" : `${eight.jobsPerSecond.toFixed(2)} (${eight.ofIdeal.toFixed(3)})`,
      "≥ 0.95",
      eight !== undefined && eight.ofIdeal >= 0.95 ? "yes" : "no",
    ],
    [
      "the same 0.5 s jobs on a local pool of 8 Blenders (no NATS): jobs/s ÷ ideal",
      `${bench.localEightSlots.jobsPerSecond.toFixed(2)} (${bench.localEightSlots.ofIdeal.toFixed(3)})`,
      "",
      "",
    ],
    [
      `0.5 s jobs, 8 slots (${eight === undefined ? "-" : layout(eight)}): NATS ÷ the local pool of 8 (jobs/s)`,
      eight === undefined ? "-" : (eight.jobsPerSecond / bench.localEightSlots.jobsPerSecond).toFixed(3),
      "",
      "",
    ],
    [
      `trivial jobs, 8 slots (${layout(bench.trivial)}): throughput`,
      `${bench.trivial.jobsPerSecond.toFixed(1)} jobs/s`,
      "",
      "",
    ],
    cpuRow(`CPU per 0.5 s job, 8 slots (${eight === undefined ? "-" : layout(eight)})`, eight?.cpuPerJob),
    cpuRow("CPU per 0.5 s job, the same on a local pool of 8 Blenders", bench.localEightSlots.cpuPerJob, true),
    cpuRow(`CPU per trivial job, 8 slots (${layout(bench.trivial)})`, bench.trivial.cpuPerJob),
    phase("per job: addJob → worker has the message, p50 / p99", bench.phases.submitToPickup),
    phase("per job: message → Blender starts the job, p50 / p99", bench.phases.pickupToStart),
    phase("per job: script ends → result ready to write, p50 / p99", bench.phases.endToRecorded),
    phase("per job: result ready → host's result(), p50 / p99", bench.phases.recordedToHost),
    phase("per slot: idle between a job's end and the next message, p50 / p99", bench.phases.slotIdle),
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { json: { type: "boolean", default: false }, runs: { type: "string", default: "20" } },
  });
  const bench = await benchNats({ runs: Number(values.runs), log: (line) => values.json || console.error(line) });
  if (values.json) console.log(JSON.stringify(bench, null, 2));
  else for (const row of natsRows(bench)) console.log(`| ${row.join(" | ")} |`);
}
