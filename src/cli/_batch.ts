/** `bgproc batch FILE.jsonc`: many jobs, live bars, then a summary table. */

// deno-lint-ignore-file no-console
import { join } from "node:path";
import { InvalidJobError, type JobDroppedError } from "../errors.ts";
import type { Job } from "../api/job.ts";
import type { JobResult } from "../types.ts";
import type { Flags } from "./_args.ts";
import { BATCH_FIELDS, parseBatch } from "./_batch_file.ts";
import type { Command } from "./_command.ts";
import { duration, type Ending } from "./_display.ts";
import { ExitCode, UsageError } from "./_errors.ts";
import { watch } from "./_jobs.ts";
import { CLUSTER_FLAGS, MANAGER_FLAGS, openManager, OUTPUT_FLAGS } from "./_manager_flags.ts";
import { userPath } from "./_paths.ts";
import { BATCH_WORDS, inUserWords } from "./_words.ts";
import { dropReport, logReports } from "./_report.ts";

/** Print rows as aligned columns. */
export function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd());
}

/** The `batch` command. */
export const batchCommand: Command = {
  name: "batch",
  summary: "run the jobs listed in a JSONC file, then print a summary",
  usage: "bgproc batch FILE.jsonc [options]",
  notes: `FILE.jsonc holds a list of jobs (comments and trailing commas allowed), or { "jobs": [...] }. Each job:
  { "script": "x.py", "name"?: "a", "blend"?: "scene.blend", "data"?: { ... }, "timeout"?: seconds,
    "args"?: [...], "paths"?: ["data/input", "args/1"], "factoryStartup"?: false, "addons"?: ["node_wrangler"] }
Fields: ${BATCH_FIELDS.join(", ")}. script, blend, and the data and args values listed in "paths" are
paths relative to FILE's folder. An entry without a name is job-N, N its position in FILE (from 1). With
--output DIR each job's files go to DIR/NAME.

Exit status: 0 all completed, 1 any dropped, 2 bad usage or a bad file, 3 no Blender, 130 interrupted.`,
  flags: { ...MANAGER_FLAGS, ...CLUSTER_FLAGS, ...OUTPUT_FLAGS },
  async run({ flags, positionals, rest }) {
    if (positionals.length !== 1 || rest.length > 0) throw new UsageError("batch takes exactly one FILE.jsonc");
    const file = positionals[0]!;
    const absolute = userPath(file);
    let text: string;
    try {
      text = await Deno.readTextFile(absolute);
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${(error as Error).message.split(",")[0]}`);
    }
    const entries = parseBatch(text, file, absolute);
    if (entries.length === 0) {
      console.error(`bgproc: ${file} lists no jobs: nothing to run`);
      if (flags.json) console.log("[]");
      return ExitCode.ok;
    }
    await using manager = await openManager(flags);
    const jobs: Job[] = [];
    for (const [index, entry] of entries.entries()) {
      try {
        // --output DIR: each job's files in DIR/<its name> (every entry has one, unique), so jobs never collide.
        const folder = typeof flags.output === "string" ? join(userPath(flags.output), entry.name!) : null;
        jobs.push(manager.addJob(folder === null ? entry : { ...entry, outputDir: folder }));
      } catch (error) {
        if (error instanceof InvalidJobError) {
          throw new UsageError(`${file}: jobs[${index}]: ${inUserWords(error, BATCH_WORDS)}`);
        }
        throw error;
      }
    }
    const { interrupted, display } = await watch(manager, jobs, flags);
    const rows = await Promise.all(jobs.map(async (job) => {
      const outcome: { result?: JobResult; error?: JobDroppedError } = await job.result().then(
        (result) => ({ result }),
        (error: JobDroppedError) => ({ error }),
      );
      return { job, ...outcome, ...display.ending(job) };
    }));
    printRows(rows, flags);
    if (!interrupted) {
      for (const { error } of rows) {
        if (error !== undefined) console.error(`\n${dropReport(error, flags.verbose === true)}`);
      }
    }
    await logReports(flags, rows.map((row) => row.error));
    if (interrupted) return ExitCode.interrupted;
    return rows.some((row) => row.error !== undefined) ? ExitCode.dropped : ExitCode.ok;
  },
};

interface Row {
  readonly job: Job;
  readonly result?: JobResult;
  readonly error?: JobDroppedError;
  readonly ending: Ending | undefined;
  readonly ms: number | undefined;
}

/**
 * `--json`: one object per job. Otherwise, when stdout is not a terminal (a file, a pipe), a table with the
 * times the ✔/✖ lines said; on a terminal those lines and the summary line already said it all.
 */
function printRows(rows: readonly Row[], flags: Flags): void {
  if (flags.json) {
    console.log(JSON.stringify(rows.map(({ job, result, error, ms }) => ({
      name: job.name,
      state: job.state,
      attempts: job.attempts,
      durationMs: result?.durationMs ?? ms ?? null,
      pythonData: result?.pythonData ?? null,
      ...(typeof flags.output === "string" ? { outputs: result?.outputs ?? [] } : {}),
      reason: error?.reason ?? null,
    }))));
    return;
  }
  if (Deno.stdout.isTerminal()) return;
  printTable([
    ["name", "state", "attempts", "time"],
    ...rows.map(({ job, error, ending, ms }) => [
      [...job.name].length > 32 ? [...job.name].slice(0, 31).join("") + "…" : job.name,
      ending === "not started" ? "not started" : error === undefined ? job.state : `${job.state} (${error.reason})`,
      String(job.attempts),
      ms === undefined ? "-" : duration(ms),
    ]),
  ]);
}
