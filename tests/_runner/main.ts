// deno-lint-ignore-file no-console
/**
 * The test runner behind `deno task test`, `test:quick` and `ci`: every test file of tests/ on every Blender the plan
 * (`plan.ts`) names for it, each file on each Blender a `deno test` process of its own, several at once.
 *
 *   deno run -A tests/_runner/main.ts [--quick] [--gates] [--jobs N] [--no-extras] [file ...]
 *
 * - `--quick`: the files that start no Blender, and one job per mode on the default Blender (about 3 minutes).
 * - `--gates`: also run `deno task gates` (fmt, lint, type check, Python lint, doc lint, publish dry run) beside.
 * - `--jobs N`: how many run at once (default `BGPROC_TEST_JOBS`, else the cores + 2: 4 on 2 cores, where the test
 *   files wait on Blender start-ups, sleeps and timeouts often enough that 4 finished sooner than 3).
 * - `--no-extras`: only the default Blender (else 4.3 and 5.2 too, where .ci/blender-root made them; under CI=true
 *   a missing one is a failure).
 * - files: only these test files (on the Blenders the plan names).
 *
 * Logs and junit files go to .test-results/<Blender>/; a failing file's errors are printed as it ends.
 */

import { availableParallelism } from "node:os";
import { relative } from "node:path";
import { parseArgs } from "node:util";
import { findTestBlenders, type TestBlender } from "./blenders.ts";
import { listTestFiles, PLAN } from "./plan.ts";
import { schedule } from "./schedule.ts";
import { childCpuSeconds, runUnit, type Unit, unitLabel, type UnitResult } from "./unit.ts";

/** A unit's result with the CPU seconds its process tree used. */
type Measured = UnitResult & { readonly cpu: number };

const RESULTS = ".test-results";
/** A file that runs longer than this is killed and counted as failed (a hang must not eat CI's 90 minutes). */
const LIMIT_SECONDS = 1_500;

function units(files: string[], blenders: TestBlender[], quick: boolean): Unit[] {
  const [first, ...extras] = blenders;
  const out: Unit[] = [];
  for (const file of files) {
    const entry = PLAN[file];
    if (entry === undefined) continue;
    if (entry.where === "none") out.push({ file, blender: undefined, seconds: entry.seconds });
    else if (quick) {
      if (entry.quick !== undefined) out.push({ file, blender: first, seconds: entry.seconds, filter: entry.quick });
    } else {
      out.push({ file, blender: first, seconds: entry.seconds });
      if (entry.where !== "every") continue;
      for (const blender of extras) {
        out.push({ file, blender, seconds: entry.seconds, ...(blender.ready ? { ready: blender.ready } : {}) });
      }
    }
  }
  return out;
}

function duration(seconds: number): string {
  const s = Math.round(seconds);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** What went wrong in a failed file's log: Deno's ERRORS section, else the log's last lines. */
function failureText(result: UnitResult): string {
  let text = "";
  try {
    text = Deno.readTextFileSync(result.log);
  } catch {
    return "";
  }
  const errors = text.lastIndexOf("\n ERRORS \n");
  const lines = (errors >= 0 ? text.slice(errors) : text).split("\n");
  return (lines.length > 150 ? [...lines.slice(0, 150), `... (${lines.length - 150} more lines)`] : lines).join("\n");
}

function report(result: Measured, done: number, total: number): void {
  const counts = [`${result.passed} passed`];
  if (result.failed > 0) counts.unshift(`${result.failed} failed`);
  if (result.ignored > 0) {
    counts.push(`${result.ignored} ${result.unit.filter === undefined ? "ignored" : "filtered out"}`);
  }
  const mark = result.failed > 0 ? "FAIL" : "ok  ";
  const what = result.unit.gate ? `- deno task ${result.unit.file}` : unitLabel(result.unit);
  console.log(
    `${mark} ${what.padEnd(44)} ${counts.join(", ").padEnd(28)} ${duration(result.seconds).padStart(6)}` +
      `  cpu ${duration(result.cpu).padStart(6)}  [${done}/${total}]`,
  );
  if (result.failed === 0) return;
  if (result.problem !== undefined) console.log(`     ${result.problem}`);
  const text = failureText(result);
  if (text !== "") console.log(`     log: ${relative(Deno.cwd(), result.log)}\n${text}\n`);
}

function summary(results: Measured[], blenders: TestBlender[], wall: number): void {
  console.log("\nper Blender        files  passed  failed  ignored  time in files  cpu");
  const labels = [undefined, ...blenders.map((blender) => blender.label)];
  for (const label of labels) {
    const mine = results.filter((result) => !result.unit.gate && result.unit.blender?.label === label);
    if (mine.length === 0) continue;
    const sum = (key: "passed" | "failed" | "ignored" | "seconds" | "cpu") => mine.reduce((n, r) => n + r[key], 0);
    const name = label === undefined ? "no Blender" : `Blender ${label}`;
    console.log(
      `${name.padEnd(18)} ${String(mine.length).padStart(5)} ${String(sum("passed")).padStart(7)} ` +
        `${String(sum("failed")).padStart(7)} ${String(sum("ignored")).padStart(8)}  ${
          duration(sum("seconds")).padEnd(13)
        }  ` +
        duration(sum("cpu")),
    );
  }
  const cpu = results.reduce((n, r) => n + r.cpu, 0);
  console.log(`wall time ${duration(wall)}, cpu ${duration(cpu)} (${(cpu / wall).toFixed(2)} cores busy on average)`);
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      gates: { type: "boolean", default: false },
      jobs: { type: "string" },
      "no-extras": { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  const all = listTestFiles();
  const problems: string[] = [];
  for (const file of all) if (PLAN[file] === undefined) problems.push(`${file} is not in tests/_runner/plan.ts`);
  const chosen = positionals.length > 0 ? positionals.map((file) => relative(Deno.cwd(), file)) : all;
  for (const file of chosen) if (!all.includes(file)) problems.push(`${file} is not a test file under tests/`);
  const found = await findTestBlenders(!values.quick && !values["no-extras"]);
  for (const line of found.missing) {
    if (Deno.env.get("CI") === "true" || found.blenders.length === 0) problems.push(line);
    else console.log(`skipping: ${line}`);
  }
  if (problems.length > 0) {
    for (const line of problems) console.error(`test runner: ${line}`);
    return 1;
  }
  const jobs = Number(values.jobs ?? Deno.env.get("BGPROC_TEST_JOBS") ?? Math.max(2, availableParallelism() + 2));
  if (!Number.isInteger(jobs) || jobs < 1) throw new RangeError(`--jobs must be a whole number >= 1: got ${jobs}`);
  const todo = units(chosen, found.blenders, values.quick);
  if (values.gates) todo.push({ file: "gates", gate: true, blender: undefined, seconds: 1_000 });
  console.log(`${todo.length} test files on ${found.blenders.map((b) => b.version).join(", ")}, ${jobs} at once`);
  await Deno.remove(RESULTS, { recursive: true }).catch(() => {});
  const started = performance.now();
  // Fetch the npm packages once, before several test processes would each fetch them.
  const install = await new Deno.Command(Deno.execPath(), { args: ["install"], stdin: "null" }).output();
  if (!install.success) {
    console.error(`test runner: deno install failed:\n${new TextDecoder().decode(install.stderr)}`);
    return 1;
  }
  let done = 0;
  let cpuSoFar = childCpuSeconds();
  const measured = async (unit: Unit): Promise<Measured> => {
    const result = await runUnit(unit, RESULTS, LIMIT_SECONDS);
    const cpu = childCpuSeconds() - cpuSoFar;
    cpuSoFar += cpu;
    return { ...result, cpu };
  };
  const results = await schedule(todo, jobs, measured, (result) => report(result, ++done, todo.length));
  summary(results, found.blenders, (performance.now() - started) / 1000);
  return results.some((result) => result.failed > 0) ? 1 : 0;
}

Deno.exit(await main());
