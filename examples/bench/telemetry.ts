// deno-lint-ignore-file no-console
/**
 * The `telemetry` section of the bench: what OpenTelemetry costs per job. Each side is its own Deno process (Deno
 * reads `OTEL_DENO` at start-up), off and on interleaved, in pool and fork mode; "on" exports over OTLP/HTTP to a
 * receiver in this process. Beside it, the telemetry calls of one job alone against the API's no-op providers: what a
 * job pays with telemetry off (its span and metrics; it carries no trace context, so no attempt or phase span is
 * made). `bench.ts` calls
 * {@linkcode benchTelemetry}; `deno task bench:telemetry [--json]` runs it alone. Reports only.
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { JobSpans } from "../../src/api/_job_spans.ts";
import { meters, traceAttempt } from "../../src/_telemetry.ts";
import type { AttemptTiming } from "../../src/timings.ts";

/** One mode's per-job medians, ms. */
export interface TelemetrySide {
  offMs: number;
  onMs: number;
}

/** What the telemetry section measured. */
export interface TelemetryBench {
  pool: TelemetrySide;
  fork: TelemetrySide;
  /** The telemetry calls of one job with telemetry off (no-op providers), microseconds. */
  offCallsUs: number;
  jobsPerRun: number;
  runs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function side(mode: string, count: number, env: Record<string, string>): Promise<number[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", fileURLToPath(new URL("./telemetry_jobs.ts", import.meta.url)), mode, String(count)],
    env,
    stdin: "null",
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error(`the ${mode} telemetry run failed`);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

/** A job's telemetry calls, `count` times, against whatever providers this process has; µs per job. */
function callsPerJob(count: number): number {
  const spans = new JobSpans({ "bgproc.backend": "local", "bgproc.mode": "pool" }, () => "ACTIVE");
  const now = Date.now();
  const timing: AttemptTiming = {
    attempt: 1,
    startMs: now,
    endMs: now + 5,
    outcome: "completed",
    ranOn: "blender",
    phases: ["start", "blend", "script", "results", "outputs"].map((phase, at) => ({
      phase: phase as "start",
      startMs: now + at,
      endMs: now + at + 1,
    })),
  };
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const name = `job-${i}`;
    spans.start(name, "/scripts/trivial.py");
    meters().attemptDuration.record(0.005, { "bgproc.mode": "pool", "bgproc.attempt.outcome": "completed" });
    meters().blenderStartup.record(0.001, { "bgproc.mode": "pool" });
    traceAttempt(undefined, timing, { "bgproc.job.name": name });
    spans.ended(name, { state: "COMPLETED", attempts: 1, timings: undefined });
  }
  const us = (performance.now() - start) * 1000 / count;
  spans.close();
  return us;
}

/** Run the section. */
export async function benchTelemetry(options: { log: (line: string) => void; jobs?: number; runs?: number }) {
  const jobs = options.jobs ?? 60;
  const runs = options.runs ?? 3;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    await request.arrayBuffer();
    return Response.json({});
  });
  const on = {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf", // OTLP's default, what a collector is sent.
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${server.addr.port}`,
    OTEL_SERVICE_NAME: "bgproc-bench",
  };
  const off = { OTEL_DENO: "false" };
  const result: TelemetryBench = {
    pool: { offMs: 0, onMs: 0 },
    fork: { offMs: 0, onMs: 0 },
    offCallsUs: callsPerJob(100_000),
    jobsPerRun: jobs,
    runs,
  };
  try {
    for (const mode of ["pool", "fork"] as const) {
      options.log(`telemetry off and on, ${mode} mode, ${runs} × ${jobs} jobs each, interleaved…`);
      const times = { off: [] as number[], on: [] as number[] };
      for (let run = 0; run < runs; run++) {
        times.off.push(...await side(mode, jobs, off));
        times.on.push(...await side(mode, jobs, on));
      }
      result[mode] = { offMs: median(times.off), onMs: median(times.on) };
    }
  } finally {
    await server.shutdown();
  }
  return result;
}

/** The section's rows: measure, value, goal. */
export function telemetryRows(bench: TelemetryBench): [string, string, string][] {
  const ms = (x: number) => `${x.toFixed(2)} ms`;
  return [
    [
      "a job's telemetry calls with telemetry off (no-op API)",
      `${bench.offCallsUs.toFixed(2)} µs`,
      "no cost beyond noise",
    ],
    ...(["pool", "fork"] as const).map((mode): [string, string, string] => [
      `${mode} job, telemetry off / on (medians)`,
      `${ms(bench[mode].offMs)} / ${ms(bench[mode].onMs)}`,
      "",
    ]),
    ["  per-job cost of telemetry on, pool", ms(bench.pool.onMs - bench.pool.offMs), "<= 0.5 ms"],
    ["  per-job cost of telemetry on, fork", ms(bench.fork.onMs - bench.fork.offMs), ""],
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { json: { type: "boolean", default: false }, runs: { type: "string", default: "3" } },
  });
  const bench = await benchTelemetry({ log: (line) => values.json || console.error(line), runs: Number(values.runs) });
  if (values.json) console.log(JSON.stringify(bench, null, 2));
  else {for (const [measure, value, goal] of telemetryRows(bench)) {
      console.log(`${measure.padEnd(52)} ${value.padStart(20)}  ${goal}`);
    }}
}
