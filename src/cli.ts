/**
 * The `bgproc` command line: run one Blender job, a batch of them, or show
 * which Blender and settings would be used.
 *
 * ```sh
 * deno run -A jsr:@bgproc/blender/cli run script.py --blend scene.blend --data size=2 --workers 4
 * ```
 *
 * @module
 */

// deno-lint-ignore-file no-console
import { parse as parseJsonc, type ParseError, printParseErrorCode } from "jsonc-parser";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { findBlender } from "./blender.ts";
import { BlenderNotFoundError, InvalidJobError, JobDroppedError } from "./errors.ts";
import { type AddJobOptions, type Job, JobManager, type JobManagerOptions } from "./job_manager.ts";
import type { JobResult, JsonObject, JsonValue } from "./types.ts";

const USAGE: Record<string, string> = {
  main: `bgproc — run Blender Python scripts in background Blender processes

Usage:
  bgproc run SCRIPT [options] [-- ARGS...]   run one job, show its progress, print its python_data
  bgproc batch FILE.jsonc [options]          run a list of jobs, then print a summary
  bgproc info [--json]                       show the Blender, work folder and mode that would be used

Run 'bgproc COMMAND --help' for a command's options.`,
  run: `Usage: bgproc run SCRIPT [options] [-- ARGS...]

Options:
  --blend FILE        open this .blend file first (the job works on a private copy)
  --data KEY=VALUE    passed_data[KEY] = VALUE (a JSON value, else a string); repeatable
  --data-json JSON    passed_data as one JSON object (--data entries are added to it)
  --timeout S         kill the job after S seconds (default: none)
  --attempts N        start the job up to N times when it fails (default: 1)
  --mode MODE         process (default), pool or fork
  --blender PATH      the Blender executable (default: $BLENDER, else blender on PATH)
  --json              print the result as JSON
  -h, --help          show this help

Exit status: 0 when the job completed, 1 when it was dropped (the report goes to stderr), 2 on bad usage.`,
  batch: `Usage: bgproc batch FILE.jsonc [options]

FILE.jsonc holds a list of jobs (comments and trailing commas allowed), or { "jobs": [...] }. Each job:
  { "script": "x.py", "name"?: "a", "blend"?: "scene.blend", "data"?: { ... }, "timeout"?: seconds, "args"?: [...] }
Paths are relative to the file.

Options:
  --workers N         run up to N jobs at once (default: 2)
  --attempts N        start each job up to N times when it fails (default: 1)
  --mode MODE         process (default), pool or fork
  --blender PATH      the Blender executable
  --json              print the summary as JSON
  -h, --help          show this help

Exit status: 0 when every job completed, 1 when any was dropped, 2 on bad usage or a bad file.`,
  info: `Usage: bgproc info [--json] [--blender PATH] [--mode MODE]

Shows the Blender executable and version, the folder work roots are made in, and the mode that would be used.`,
};

/** A bad command line or input file: one line on stderr and exit status 2. */
class UsageError extends Error {}

/**
 * Run the CLI with `args` (without the program name).
 *
 * @param args The command line, e.g. `["run", "script.py", "--data", "size=2"]`.
 * @returns The exit status: 0 done, 1 a job was dropped, 2 bad usage.
 */
export async function main(args: readonly string[]): Promise<number> {
  try {
    const [command, ...rest] = args;
    switch (command) {
      case "run":
        return await run(rest);
      case "batch":
        return await batch(rest);
      case "info":
        return await info(rest);
      case undefined:
      case "-h":
      case "--help":
      case "help":
        console.log(USAGE.main);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${command}' (try: run, batch, info)`);
    }
  } catch (error) {
    if (error instanceof UsageError || error instanceof InvalidJobError || error instanceof BlenderNotFoundError) {
      console.error(`bgproc: ${error.message}`);
      return 2;
    }
    throw error;
  }
}

type Flags = Record<string, string | boolean | string[] | undefined>;

type Options = Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>;

/** The flags every command takes for the manager it makes (read by `managerOptions`), and `--json`. */
const MANAGER_FLAGS: Options = {
  attempts: { type: "string" },
  mode: { type: "string" },
  blender: { type: "string" },
  json: { type: "boolean" },
};

function parse(command: string, args: readonly string[], options: Options): { flags: Flags; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    return { flags: values as Flags, positionals };
  } catch (error) {
    throw new UsageError(`${command}: ${(error as Error).message.split("\n")[0]}`);
  }
}

function positiveNumber(flag: string, value: unknown, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0 || (integer && !Number.isInteger(number))) {
    throw new UsageError(`--${flag} must be a positive ${integer ? "whole number" : "number"}, not '${value}'`);
  }
  return number;
}

function managerOptions(flags: Flags, workers?: number): JobManagerOptions {
  const mode = flags.mode;
  if (mode !== undefined && mode !== "process" && mode !== "pool" && mode !== "fork") {
    throw new UsageError(`--mode must be 'process', 'pool' or 'fork', not '${mode}'`);
  }
  const attempts = positiveNumber("attempts", flags.attempts, true);
  return {
    ...(workers === undefined ? {} : { maxWorkers: workers }),
    ...(attempts === undefined ? {} : { maxAttempts: attempts }),
    ...(mode === undefined ? {} : { mode }),
    ...(typeof flags.blender === "string" ? { blender: flags.blender } : {}),
  };
}

/** `--data-json` and `--data KEY=VALUE` entries as one object. */
function passedData(flags: Flags): JsonObject {
  let data: JsonObject = {};
  if (typeof flags["data-json"] === "string") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(flags["data-json"]);
    } catch (error) {
      throw new UsageError(`--data-json is not JSON: ${(error as Error).message}`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new UsageError("--data-json must be a JSON object");
    }
    data = parsed as JsonObject;
  }
  for (const entry of (flags.data as string[] | undefined) ?? []) {
    const at = entry.indexOf("=");
    if (at <= 0) throw new UsageError(`--data takes KEY=VALUE, not '${entry}'`);
    const text = entry.slice(at + 1);
    let value: JsonValue;
    try {
      value = JSON.parse(text);
    } catch {
      value = text;
    }
    data[entry.slice(0, at)] = value;
  }
  return data;
}

async function run(args: readonly string[]): Promise<number> {
  const dashes = args.indexOf("--");
  const own = dashes < 0 ? args : args.slice(0, dashes);
  const scriptArgs = dashes < 0 ? [] : args.slice(dashes + 1);
  const { flags, positionals } = parse("run", own, {
    blend: { type: "string" },
    data: { type: "string", multiple: true },
    "data-json": { type: "string" },
    timeout: { type: "string" },
    ...MANAGER_FLAGS,
  });
  if (flags.help) {
    console.log(USAGE.run);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("run takes exactly one SCRIPT (see bgproc run --help)");
  const timeout = positiveNumber("timeout", flags.timeout, false);
  await using manager = new JobManager(managerOptions(flags));
  const job = manager.addJob({
    script: positionals[0]!,
    passedData: passedData(flags),
    args: scriptArgs,
    ...(typeof flags.blend === "string" ? { blendFile: flags.blend } : {}),
    ...(timeout === undefined ? {} : { timeout: timeout * 1000 }),
  });
  const display = new Display([job]);
  const shown = display.follow();
  let result: JobResult;
  try {
    result = await job.result();
  } catch (error) {
    await shown;
    if (!(error instanceof JobDroppedError)) throw error;
    console.error(error.report);
    if (flags.json) console.log(JSON.stringify({ name: job.name, state: "DROPPED", reason: error.reason }));
    return 1;
  }
  await shown;
  if (flags.json) {
    const { name, pythonData, dataBlocks, attempts, durationMs } = result;
    console.log(JSON.stringify({ name, state: "COMPLETED", pythonData, dataBlocks, attempts, durationMs }));
  } else {
    console.log(JSON.stringify(result.pythonData, null, 2));
  }
  return 0;
}

/** Read and check a JSONC job list into `addJob` options; errors name the entry and the field. */
function parseBatch(text: string, file: string): AddJobOptions[] {
  const errors: ParseError[] = [];
  const parsed = parseJsonc(text, errors, { allowTrailingComma: true });
  if (errors.length > 0) {
    const first = errors[0]!;
    const line = text.slice(0, first.offset).split("\n").length;
    throw new UsageError(`${file}:${line}: ${printParseErrorCode(first.error)}`);
  }
  const list = Array.isArray(parsed) ? parsed : parsed?.jobs;
  if (!Array.isArray(list)) throw new UsageError(`${file}: expected a list of jobs, or { "jobs": [...] }`);
  const base = dirname(resolve(file));
  const known = new Set(["name", "script", "blend", "data", "timeout", "args"]);
  return list.map((entry: unknown, index: number) => {
    const where = `${file}: jobs[${index}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new UsageError(`${where} must be an object`);
    }
    const job = entry as Record<string, unknown>;
    for (const key of Object.keys(job)) {
      if (!known.has(key)) throw new UsageError(`${where} has an unknown field '${key}'`);
    }
    if (typeof job.script !== "string") throw new UsageError(`${where}.script must be a string`);
    if (job.name !== undefined && typeof job.name !== "string") throw new UsageError(`${where}.name must be a string`);
    if (job.blend !== undefined && typeof job.blend !== "string") {
      throw new UsageError(`${where}.blend must be a string`);
    }
    if (job.data !== undefined && (typeof job.data !== "object" || job.data === null || Array.isArray(job.data))) {
      throw new UsageError(`${where}.data must be an object`);
    }
    if (job.timeout !== undefined && !(typeof job.timeout === "number" && job.timeout > 0)) {
      throw new UsageError(`${where}.timeout must be a positive number of seconds`);
    }
    if (job.args !== undefined && !(Array.isArray(job.args) && job.args.every((a) => typeof a === "string"))) {
      throw new UsageError(`${where}.args must be a list of strings`);
    }
    return {
      script: resolve(base, job.script),
      ...(job.name === undefined ? {} : { name: job.name as string }),
      ...(job.blend === undefined ? {} : { blendFile: resolve(base, job.blend as string) }),
      ...(job.data === undefined ? {} : { passedData: job.data as JsonObject }),
      ...(job.timeout === undefined ? {} : { timeout: (job.timeout as number) * 1000 }),
      ...(job.args === undefined ? {} : { args: job.args as string[] }),
    };
  });
}

async function batch(args: readonly string[]): Promise<number> {
  const { flags, positionals } = parse("batch", args, { workers: { type: "string" }, ...MANAGER_FLAGS });
  if (flags.help) {
    console.log(USAGE.batch);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("batch takes exactly one FILE.jsonc (see bgproc batch --help)");
  const file = positionals[0]!;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  const entries = parseBatch(text, file);
  const workers = positiveNumber("workers", flags.workers, true) ?? 2;
  await using manager = new JobManager(managerOptions(flags, workers));
  const jobs: Job[] = [];
  for (const [index, entry] of entries.entries()) {
    try {
      jobs.push(manager.addJob(entry));
    } catch (error) {
      if (error instanceof InvalidJobError) throw new UsageError(`${file}: jobs[${index}]: ${error.message}`);
      throw error;
    }
  }
  await new Display(jobs).follow();
  const rows = await Promise.all(jobs.map(async (job) => {
    const outcome: { result?: JobResult; error?: JobDroppedError } = await job.result().then(
      (result) => ({ result }),
      (error: JobDroppedError) => ({ error }),
    );
    return { job, ...outcome };
  }));
  if (flags.json) {
    console.log(JSON.stringify(rows.map(({ job, result, error }) => ({
      name: job.name,
      state: job.state,
      attempts: job.attempts,
      durationMs: result?.durationMs ?? null,
      pythonData: result?.pythonData ?? null,
      reason: error?.reason ?? null,
    }))));
  } else {
    printTable(rows.map(({ job, result, error }) => [
      job.name,
      error === undefined ? job.state : `${job.state} (${error.reason})`,
      String(job.attempts),
      result === undefined ? "-" : `${(result.durationMs / 1000).toFixed(1)} s`,
    ]));
    for (const { error } of rows) if (error !== undefined) console.error(`\n${error.report}`);
  }
  return rows.some((row) => row.error !== undefined) ? 1 : 0;
}

async function info(args: readonly string[]): Promise<number> {
  const { flags } = parse("info", args, {
    json: { type: "boolean" },
    blender: { type: "string" },
    mode: { type: "string" },
  });
  if (flags.help) {
    console.log(USAGE.info);
    return 0;
  }
  const options = managerOptions(flags);
  const blender = findBlender(options.blender === undefined ? {} : { blender: options.blender });
  const output = await new Deno.Command(blender, { args: ["--version"], stdout: "piped", stderr: "null" }).output();
  const version = new TextDecoder().decode(output.stdout).split("\n")[0]?.trim() ?? "unknown";
  await using manager = new JobManager(options);
  const report = {
    blender,
    version,
    workDir: dirname(manager.workRoot),
    mode: manager.mode,
    maxWorkers: manager.maxWorkers,
  };
  if (flags.json) console.log(JSON.stringify(report));
  else printTable(Object.entries(report).map(([key, value]) => [key, String(value)]), false);
  return 0;
}

function printTable(rows: string[][], header = true): void {
  const all = header ? [["name", "state", "attempts", "time"], ...rows] : rows;
  const widths = all[0]!.map((_, column) => Math.max(...all.map((row) => row[column]!.length)));
  for (const row of all) console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd());
}

/**
 * Live progress: on a terminal, a bar per active job and an overall bar,
 * redrawn in place; otherwise a plain line per whole-percent change.
 */
class Display {
  readonly #jobs: readonly Job[];
  readonly #terminal = Deno.stderr.isTerminal();
  readonly #encoder = new TextEncoder();
  #drawn = 0;

  constructor(jobs: readonly Job[]) {
    this.#jobs = jobs;
  }

  async follow(): Promise<void> {
    const timer = this.#terminal ? setInterval(() => this.#draw(), 100) : undefined;
    try {
      await Promise.all(this.#jobs.map(async (job) => {
        let shown = -1;
        for await (const progress of job.progressUpdates()) {
          const percent = Math.floor(progress * 100);
          if (!this.#terminal && percent !== shown) console.error(`${job.name}: ${percent} %`);
          shown = percent;
        }
        if (!this.#terminal) console.error(`${job.name}: ${job.state}`);
      }));
    } finally {
      clearInterval(timer);
      if (this.#terminal) this.#draw();
    }
  }

  #draw(): void {
    const bar = (value: number, width = 30) =>
      `[${"#".repeat(Math.round(value * width))}${".".repeat(width - Math.round(value * width))}]`;
    const lines = this.#jobs.filter((job) => job.state === "ACTIVE").map((job) =>
      `${bar(job.progress)} ${(job.progress * 100).toFixed(0).padStart(3)} %  ${job.name}`
    );
    if (this.#jobs.length > 1) {
      const done = this.#jobs.filter((job) => job.state === "COMPLETED" || job.state === "DROPPED").length;
      const overall = this.#jobs.reduce((sum, job) => sum + (job.state === "COMPLETED" ? 1 : job.progress), 0);
      lines.push(`${bar(overall / this.#jobs.length)} ${done}/${this.#jobs.length} jobs done`);
    }
    const clear = this.#drawn > 0 ? `\x1b[${this.#drawn}A\x1b[J` : "";
    Deno.stderr.writeSync(this.#encoder.encode(clear + lines.map((line) => line + "\n").join("")));
    this.#drawn = lines.length;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
