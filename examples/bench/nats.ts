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
import { type Job, JobManager } from "../../mod.ts";
import { NatsJobManager } from "../../src/nats/mod.ts";
import { startNatsServer, startWorker, type WorkerProcess } from "../../tests/nats/_server.ts";

/** What the nats section measured. */
export interface NatsBench {
  /** Median round trip of a trivial job, local pool mode, ms. */
  localPoolJobMs: number;
  /** Median round trip of a trivial job through NATS to a pool-mode worker, ms. */
  natsPoolJobMs: number;
  /** Submit → ACTIVE on the host, p50 / p99, ms. */
  pickupP50Ms: number;
  pickupP99Ms: number;
  /** kill() of a running job → its record DROPPED (Blender gone on the worker), p50 / p99, ms. */
  cancelP50Ms: number;
  cancelP99Ms: number;
  /** Jobs/s on 0.5 s sleeping jobs with 1, 2 and 3 workers. */
  jobsPerSecond: [number, number, number];
}

const script = (name: string) => fileURLToPath(new URL(`./${name}`, import.meta.url));
const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 1));
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
  const args = ["--mode", "pool", "--workers", "1"];
  try {
    workers.push(await startWorker(server.url, args));
    await using manager = await NatsJobManager.connect({ nats: { servers: server.url }, maxAttempts: 1 });
    await using local = new JobManager({ mode: "pool", maxWorkers: 1, prewarm: true });

    log("nats: trivial jobs, local pool vs NATS pool worker");
    const localMs: number[] = [];
    const natsMs: number[] = [];
    await local.addJob({ script: script("trivial.py") }).result();
    await manager.addJob({ script: script("trivial.py") }).result();
    for (let i = 0; i < runs; i++) {
      let start = performance.now();
      await local.addJob({ script: script("trivial.py") }).result();
      localMs.push(performance.now() - start);
      start = performance.now();
      await manager.addJob({ script: script("trivial.py") }).result();
      natsMs.push(performance.now() - start);
    }

    log("nats: pickup and cancel latency");
    const pickup: number[] = [];
    const cancel: number[] = [];
    for (let i = 0; i < runs; i++) {
      const start = performance.now();
      const job: Job = manager.addJob({ script: script("sleep.py"), passedData: { seconds: 600 } });
      await until(() => job.state !== "QUEUED");
      pickup.push(performance.now() - start);
      for await (const progress of job.progressUpdates()) if (progress > 0) break;
      const killAt = performance.now();
      await job.kill();
      cancel.push(performance.now() - killAt);
    }

    const jobsPerSecond: number[] = [];
    for (let count = 1; count <= 3; count++) {
      while (workers.length < count) workers.push(await startWorker(server.url, args));
      await until(() => manager.counts.availableWorkers >= count);
      log(`nats: ${jobs} sleeping jobs (0.5 s) on ${count} worker(s)`);
      const start = performance.now();
      await Promise.all(
        Array.from({ length: jobs }, () => manager.addJob({ script: script("sleep.py") }).result()),
      );
      jobsPerSecond.push(jobs / ((performance.now() - start) / 1000));
    }
    return {
      localPoolJobMs: percentile(localMs, 0.5),
      natsPoolJobMs: percentile(natsMs, 0.5),
      pickupP50Ms: percentile(pickup, 0.5),
      pickupP99Ms: percentile(pickup, 0.99),
      cancelP50Ms: percentile(cancel, 0.5),
      cancelP99Ms: percentile(cancel, 0.99),
      jobsPerSecond: jobsPerSecond as [number, number, number],
    };
  } finally {
    for (const worker of workers) await worker[Symbol.asyncDispose]();
  }
}

/** The section as table rows: measure, measured, goal, met. */
export function natsRows(bench: NatsBench): string[][] {
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  return [
    [
      "trivial job round trip, local pool / NATS pool worker (medians)",
      `${ms(bench.localPoolJobMs)} / ${ms(bench.natsPoolJobMs)}`,
      "",
      "",
    ],
    [
      "pickup latency, submit → ACTIVE, p50 / p99",
      `${ms(bench.pickupP50Ms)} / ${ms(bench.pickupP99Ms)}`,
      "p99 ≤ 50 ms",
      bench.pickupP99Ms <= 50 ? "yes" : "no",
    ],
    [
      "cancel latency, kill() → DROPPED, p50 / p99",
      `${ms(bench.cancelP50Ms)} / ${ms(bench.cancelP99Ms)}`,
      "p99 ≤ 250 ms",
      bench.cancelP99Ms <= 250 ? "yes" : "no",
    ],
    [
      "throughput, 0.5 s sleeping jobs, 1 / 2 / 3 workers",
      bench.jobsPerSecond.map((x) => x.toFixed(2)).join(" / ") + " jobs/s",
      "",
      "",
    ],
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
