/**
 * One unit of a test run: one test file on one Blender, run as a `deno test` process of its own (so what a test counts
 * in /proc/self, its fds, watchers and children, is its own), its output in a log file and its results in a junit file.
 */

import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { TestBlender } from "./blenders.ts";

/** A test file to run on one Blender (none for files that start no Blender). */
export interface Unit {
  /** The test file, or for a gate the task it runs (`deno task <file>`), whose exit status is its result. */
  readonly file: string;
  /** A gate is a `deno task`, not a test file: it counts as failed when it exits non-zero, and not at all otherwise. */
  readonly gate?: boolean;
  readonly blender: TestBlender | undefined;
  /** Expected wall time, for scheduling longest first. */
  readonly seconds: number;
  /** A `--filter` for `deno test`, when only some tests of the file run. */
  readonly filter?: string;
  /** Its Blender's readiness, while .ci/setup still builds it. */
  readonly ready?: Promise<void>;
}

/** What a unit's run gave. */
export interface UnitResult {
  readonly unit: Unit;
  readonly passed: number;
  readonly failed: number;
  readonly ignored: number;
  readonly seconds: number;
  readonly log: string;
  /** Why the run failed beyond its tests: a crash, a time limit, a missing junit file. */
  readonly problem?: string;
}

/** The unit's label in logs: "3.4 tests/x_test.ts" ("-" for no Blender). */
export function unitLabel(unit: Unit): string {
  return `${unit.blender?.label ?? "-"} ${unit.file}`;
}

function resultPath(results: string, unit: Unit, extension: string): string {
  const name = unit.file.replace(/^tests\//, "").replaceAll("/", "__").replace(/\.ts$/, "") + extension;
  return join(results, unit.blender?.label ?? "no-blender", name);
}

/** Counts from a junit file's `<testsuites>` line (Deno writes one). */
function countJunit(text: string): { tests: number; failures: number; errors: number; ignored: number } {
  const header = /<testsuites\b[^>]*>/.exec(text)?.[0] ?? "";
  const count = (name: string) => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(header)?.[1] ?? 0);
  const ignored = (text.match(/<skipped\b/g) ?? []).length;
  return { tests: count("tests"), failures: count("failures"), errors: count("errors"), ignored };
}

/**
 * CPU seconds (user and system) of this process's reaped children so far, their own children included: Linux adds a
 * child's whole tree to these counters when it is reaped. The runner reads them as each test process ends, so the
 * difference from the last reading is that process's CPU (two processes ending in the same instant would share it).
 */
export function childCpuSeconds(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 16 and 17 of stat(5), cutime and cstime, in clock ticks (100 a second on Linux).
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

async function pump(stream: ReadableStream<Uint8Array>, file: Deno.FsFile): Promise<void> {
  for await (const chunk of stream) await file.write(chunk);
}

/**
 * Runs one unit: `deno test` on its file with its Blender in `BLENDER`, output into `<results>/<label>/<file>.log`,
 * junit into `<results>/<label>/<file>.xml`, killed after `limitSeconds`.
 */
export async function runUnit(unit: Unit, results: string, limitSeconds: number): Promise<UnitResult> {
  const junit = resultPath(results, unit, ".xml");
  const log = resultPath(results, unit, ".log");
  const unready = await unit.ready?.then(() => undefined, (error: Error) => error.message);
  if (unready !== undefined) return { unit, passed: 0, failed: 1, ignored: 0, seconds: 0, log, problem: unready };
  await mkdir(dirname(junit), { recursive: true });
  const args = unit.gate ? ["task", unit.file] : [
    "test",
    "--no-check",
    "--allow-all",
    "--sanitize-ops",
    "--sanitize-resources",
    `--junit-path=${junit}`,
    ...(unit.filter === undefined ? [] : ["--filter", unit.filter]),
    unit.file,
  ];
  const env: Record<string, string> = { NO_COLOR: "1" };
  if (unit.blender?.path !== undefined) env.BLENDER = unit.blender.path;
  const started = performance.now();
  using file = await Deno.open(log, { write: true, create: true, truncate: true });
  const child = new Deno.Command(Deno.execPath(), { args, env, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, limitSeconds * 1000);
  const [status] = await Promise.all([child.status, pump(child.stdout, file), pump(child.stderr, file)]);
  clearTimeout(timer);
  const seconds = (performance.now() - started) / 1000;
  let text = "";
  try {
    text = await Deno.readTextFile(junit);
  } catch {
    // No junit file: the process died or never started a test; said below.
  }
  if (unit.gate) {
    const problem = timedOut ? `killed after its limit of ${limitSeconds} s` : `exited with code ${status.code}`;
    const gate = { unit, passed: 0, failed: 0, ignored: 0, seconds, log };
    return status.success && !timedOut ? gate : { ...gate, failed: 1, problem };
  }
  const counts = countJunit(text);
  const failed = counts.failures + counts.errors;
  const base = { unit, passed: counts.tests - failed - counts.ignored, failed, ignored: counts.ignored, seconds, log };
  if (timedOut) return { ...base, failed: failed + 1, problem: `killed after its limit of ${limitSeconds} s` };
  if (text === "") return { ...base, failed: failed + 1, problem: `wrote no junit file (exit code ${status.code})` };
  if (!status.success && failed === 0) return { ...base, failed: 1, problem: `exited with code ${status.code}` };
  return base;
}
