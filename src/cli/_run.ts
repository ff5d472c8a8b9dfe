/** `bgproc run SCRIPT`: one job, its progress, its python_data. */

// deno-lint-ignore-file no-console
import { JobDroppedError } from "../errors.ts";
import type { DataBlocks, JsonObject } from "../types.ts";
import { type Flags, positiveNumber } from "./_args.ts";
import { dataEntry } from "./_batch_file.ts";
import type { Command } from "./_command.ts";
import { EnvironmentError, ExitCode, UsageError } from "./_errors.ts";
import { watch } from "./_jobs.ts";
import { CLUSTER_FLAGS, MANAGER_FLAGS, openManager, OUTPUT_FLAGS } from "./_manager_flags.ts";
import { userPath } from "./_paths.ts";
import { describeBlocks, keptDataBlocks, passedBlocks } from "./_blocks.ts";
import { dropReport, logReports } from "./_report.ts";

function parseObject(text: string, what: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${what} is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`${what} must be a JSON object`);
  }
  return parsed as JsonObject;
}

/** passed_data from `--data-file`, `--data-json`, `--data KEY=VALUE` and `--path KEY=PATH`, in that order. */
async function passedData(flags: Flags): Promise<JsonObject> {
  let data: JsonObject = {};
  if (typeof flags["data-file"] === "string") {
    let text: string;
    try {
      text = await Deno.readTextFile(userPath(flags["data-file"]));
    } catch (error) {
      throw new UsageError(
        `--data-file: cannot read ${flags["data-file"]}: ${(error as Error).message.split("\n")[0]}`,
      );
    }
    data = parseObject(text, `--data-file ${flags["data-file"]}`);
  }
  if (typeof flags["data-json"] === "string") data = { ...data, ...parseObject(flags["data-json"], "--data-json") };
  for (const entry of (flags.data as string[] | undefined) ?? []) {
    const [key, value] = dataEntry(entry);
    data[key] = value;
  }
  for (const entry of (flags.path as string[] | undefined) ?? []) {
    const at = entry.indexOf("=");
    if (at <= 0 || at === entry.length - 1) throw new UsageError(`--path takes KEY=PATH, not '${entry}'`);
    data[entry.slice(0, at)] = userPath(entry.slice(at + 1));
  }
  return data;
}

/** The `run` command. */
export const runCommand: Command = {
  name: "run",
  summary: "run one job, show its progress, print its python_data",
  usage: "bgproc run SCRIPT [options] [-- ARGS...]",
  notes: `ARGS after -- reach the script in sys.argv. Relative paths are the caller's (also under deno task).

Exit status: 0 completed, 1 dropped (the report goes to stderr), 2 bad usage, 3 no Blender, 130 interrupted.`,
  flags: {
    blend: { type: "string", value: "FILE", help: "open this .blend file first (the job works on a private copy)" },
    data: {
      type: "string",
      multiple: true,
      value: "KEY=VALUE",
      help: "passed_data[KEY] = VALUE (JSON, else a string)",
    },
    "data-json": { type: "string", value: "JSON", help: "passed_data as one JSON object" },
    "data-file": { type: "string", value: "FILE", help: "passed_data from a JSON file" },
    path: { type: "string", multiple: true, value: "KEY=PATH", help: "passed_data[KEY] = PATH made absolute" },
    blocks: {
      type: "string",
      multiple: true,
      value: "FILE:COLL=NAMES",
      help: "pass data blocks, e.g. scene.blend:objects=Cube,Suzanne (repeatable, one FILE)",
    },
    name: { type: "string", value: "NAME", help: "the job's name (default: job-1)" },
    timeout: { type: "string", value: "S", help: "kill the job after S seconds (default: none)" },
    ...MANAGER_FLAGS,
    ...CLUSTER_FLAGS,
    ...OUTPUT_FLAGS,
  },
  async run({ flags, positionals, rest }) {
    if (positionals.length !== 1) {
      throw new UsageError(
        positionals.length === 0 ? "run needs a SCRIPT" : `run takes one SCRIPT, not also '${positionals[1]}'`,
      );
    }
    const timeout = positiveNumber(flags, "timeout", false);
    const data = await passedData(flags);
    const blocks = passedBlocks(flags);
    await using manager = await openManager(flags);
    const job = manager.addJob({
      script: userPath(positionals[0]!),
      passedData: data,
      args: rest,
      ...(typeof flags.name === "string" ? { name: flags.name } : {}),
      ...(typeof flags.blend === "string" ? { blendFile: userPath(flags.blend) } : {}),
      ...(blocks === undefined ? {} : { passedDataBlocks: blocks }),
      ...(typeof flags.output === "string" ? { outputDir: userPath(flags.output) } : {}),
      ...(timeout === undefined ? {} : { timeout: timeout * 1000 }),
    });
    const { interrupted } = await watch(manager, [job], flags);
    try {
      const result = await job.result();
      // Without --output the outputs are in the work root, which goes when the command ends: no path to print.
      const kept = typeof flags.output === "string";
      if (flags.json) {
        const { name, pythonData, attempts, durationMs, outputs } = result;
        const dataBlocks = await keptDataBlocks(result.dataBlocks, kept ? flags.output as string : null);
        const json = { name, state: "COMPLETED", pythonData, dataBlocks, attempts, durationMs };
        console.log(JSON.stringify(kept ? { ...json, outputs } : json));
      } else {
        console.log(JSON.stringify(result.pythonData, null, 2));
        for (const output of kept ? result.outputs : []) console.error(`wrote ${output.path} (${output.bytes} bytes)`);
        await reportBlocks(result.dataBlocks, kept ? flags.output as string : null);
      }
      if (!kept && result.outputs.length > 0) {
        console.error(
          `bgproc: the job wrote ${result.outputs.length} file(s), not kept: name a folder with --output DIR`,
        );
      }
      return ExitCode.ok;
    } catch (error) {
      // The cluster refused the job before it ran (a role that may not add jobs): said as the connection's trouble.
      if (error instanceof Error && error.name === "NatsConnectionError") throw new EnvironmentError(error.message);
      if (!(error instanceof JobDroppedError)) throw error;
      if (!interrupted) console.error(dropReport(error, flags.verbose === true));
      await logReports(flags, [error]);
      if (flags.json) console.log(JSON.stringify(droppedJson(error)));
      return interrupted ? ExitCode.interrupted : ExitCode.dropped;
    }
  },
};

/** `run --json` of a dropped job: why, in one message, and the Python error with its file and line. */
function droppedJson(error: JobDroppedError): object {
  const python = error.pythonError;
  return {
    name: error.jobName,
    state: "DROPPED",
    reason: error.reason,
    attempts: error.attempts,
    message: error.message,
    exitCode: error.exitCode,
    signal: error.signal,
    pythonError: python === null ? null : {
      origin: python.origin,
      type: python.type,
      message: python.message,
      file: error.location?.file ?? null,
      line: error.location?.line ?? null,
      traceback: python.text,
    },
  };
}

/** Say what became of the data blocks the script returned: kept in `--output DIR`, or not kept without it. */
async function reportBlocks(dataBlocks: DataBlocks | null, outputDir: string | null): Promise<void> {
  if (dataBlocks === null) return;
  const { count, text } = describeBlocks(dataBlocks);
  const blocks = `${count} data block${count === 1 ? "" : "s"} (${text})`;
  if (outputDir === null) {
    console.error(`bgproc: the job returned ${blocks}, not kept: name a folder with --output DIR`);
    return;
  }
  const kept = await keptDataBlocks(dataBlocks, outputDir) as { path: string };
  console.error(`wrote ${kept.path}: ${blocks}`);
}
