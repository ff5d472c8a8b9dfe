/**
 * The `bgproc` command line: run one Blender job or a batch of them with live progress bars, serve the job
 * API and dashboard, or show which Blender would be used.
 *
 * ```sh
 * deno run -A jsr:@bgproc/blender/cli run script.py --blend scene.blend --data size=2 --workers 4
 * deno run -A jsr:@bgproc/blender/cli batch jobs.jsonc --workers 4 --logs
 * deno run -A jsr:@bgproc/blender/cli render shot.blend --frames 1-48 --chunk 8 --output out/
 * deno run -A jsr:@bgproc/blender/cli serve --scripts ./scripts
 * ```
 *
 * Exit statuses: 0 done, 1 a job was dropped, 2 bad usage or a bad input file, 3 no Blender (or the
 * service's port is in use), 130 interrupted.
 *
 * @module
 */

// deno-lint-ignore-file no-console
import denoJson from "../../deno.json" with { type: "json" };
import { BlenderNotFoundError, InvalidJobError } from "../errors.ts";
import { describeFlags, parseFlags } from "./_args.ts";
import { batchCommand } from "./_batch.ts";
import type { Command } from "./_command.ts";
import { EnvironmentError, ExitCode, UsageError } from "./_errors.ts";
import { depsCommand } from "./_deps.ts";
import { infoCommand } from "./_info.ts";
import { keygenCommand } from "./_keygen.ts";
import { natsConfigCommand } from "./_nats_config.ts";
import { renderCommand } from "./_render.ts";
import { runCommand } from "./_run.ts";
import { serveCommand } from "./_serve.ts";
import { workerCommand } from "./_worker.ts";
import { didYouMean } from "../_suggest.ts";
import { FLAG_WORDS, inUserWords } from "./_words.ts";

const COMMANDS: readonly Command[] = [
  runCommand,
  batchCommand,
  renderCommand,
  serveCommand,
  workerCommand,
  depsCommand,
  infoCommand,
  keygenCommand,
  natsConfigCommand,
];

/** The version of this package. */
export const VERSION: string = denoJson.version;

function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length));
  return `bgproc ${VERSION} — run Blender Python scripts in background Blender processes

Usage: bgproc COMMAND [options]

Commands:
${COMMANDS.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`).join("\n")}
  ${"help".padEnd(width)}  show a command's options: bgproc help COMMAND

Options: -h, --help   --version

Exit status: 0 done, 1 a job was dropped, 2 bad usage or a bad input file, 3 no Blender (or the service's port is
in use), 130 interrupted.`;
}

function commandUsage(command: Command): string {
  return `Usage: ${command.usage}\n\n${command.summary[0]!.toUpperCase()}${command.summary.slice(1)}.\n\nOptions:\n${
    describeFlags(command.flags)
  }${command.notes === undefined ? "" : `\n\n${command.notes}`}`;
}

function findCommand(name: string): Command {
  const command = COMMANDS.find((command) => command.name === name);
  if (command !== undefined) return command;
  const hint = didYouMean(name, [...COMMANDS.map((command) => command.name), "help"]);
  throw new UsageError(`unknown command '${name}'${hint || ` (commands: ${COMMANDS.map((c) => c.name).join(", ")})`}`);
}

/**
 * Run the CLI with `args` (without the program name).
 *
 * @param args The command line, e.g. `["run", "script.py", "--data", "size=2"]`.
 * @returns The exit status: 0 done, 1 a job was dropped, 2 bad usage, 3 no Blender, 130 interrupted.
 */
export async function main(args: readonly string[]): Promise<number> {
  try {
    const [name, ...rest] = args;
    if (name === undefined) {
      console.error(mainUsage());
      return ExitCode.usage;
    }
    if (name === "--version" || name === "-V") {
      console.log(`bgproc ${VERSION}`);
      return ExitCode.ok;
    }
    if (name === "-h" || name === "--help") {
      console.log(mainUsage());
      return ExitCode.ok;
    }
    if (name === "help") {
      if (rest[0] === undefined) console.log(mainUsage());
      else console.log(commandUsage(findCommand(rest[0])));
      return ExitCode.ok;
    }
    const command = findCommand(name);
    const parsed = parseFlags(name, rest, command.flags);
    if (parsed.flags.help) {
      console.log(commandUsage(command));
      return ExitCode.ok;
    }
    return await command.run(parsed);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`bgproc: ${error.message}${error.context === "" ? "" : `\n${error.context}`}`);
      return ExitCode.usage;
    }
    // `render` takes its .blend file as its argument, not as --blend.
    const words = args[0] === "render" ? { ...FLAG_WORDS, blendFile: "the .blend FILE" } : FLAG_WORDS;
    if (error instanceof InvalidJobError) {
      console.error(`bgproc: ${inUserWords(error, words)}`);
      return ExitCode.usage;
    }
    if (error instanceof BlenderNotFoundError || error instanceof EnvironmentError) {
      console.error(`bgproc: ${inUserWords(error, words) ?? error.message.split("\n")[0]}`);
      return ExitCode.environment;
    }
    throw error;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
