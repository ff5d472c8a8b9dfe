/** `bgproc deps`: every file a .blend (and its script) uses, with sizes, and those missing. */

// deno-lint-ignore-file no-console
import { JobManager } from "../api/job_manager.ts";
import { printTable } from "./_batch.ts";
import type { Command } from "./_command.ts";
import { ExitCode, UsageError } from "./_errors.ts";
import { MANAGER_FLAGS, managerOptions } from "./_manager_flags.ts";

/** Bytes, as people read them. */
function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** The `deps` command. */
export const depsCommand: Command = {
  name: "deps",
  summary: "list every file a .blend uses (libraries, images, sounds, caches, ...): paths, sizes, missing",
  usage: "bgproc deps FILE.blend [--script SCRIPT.py] [options]",
  notes: `Blender opens FILE.blend and lists what it uses; nothing of the file runs. With --script, the modules the
script imports from its own folder are listed too. Exit status 1 when a file is missing.`,
  flags: {
    ...MANAGER_FLAGS,
    script: { type: "string", value: "FILE", help: "also list the modules this script imports from its folder" },
    json: { type: "boolean", help: "print as JSON" },
  },
  async run({ flags, positionals }) {
    if (positionals.length !== 1) {
      throw new UsageError(positionals.length === 0 ? "deps needs a .blend file" : "deps takes one .blend file");
    }
    await using manager = new JobManager({ ...managerOptions(flags), mode: "process", maxWorkers: 1 });
    const deps = await manager.dependencies(positionals[0]!, {
      ...(typeof flags.script === "string" ? { script: flags.script } : {}),
    });
    if (flags.json) {
      console.log(JSON.stringify(deps));
    } else if (deps.files.length === 0) {
      console.log(`${deps.blendFile} uses no other file`);
    } else {
      printTable([
        ["KIND", "SIZE", "PATH"],
        ...deps.files.map((file) => [file.kind, file.exists ? size(file.size) : "missing", file.path]),
      ]);
      const missing = deps.missing.length === 0 ? "" : `, ${deps.missing.length} missing`;
      console.log(`${deps.files.length} files, ${size(deps.bytes)}${missing}`);
    }
    return deps.missing.length === 0 ? ExitCode.ok : ExitCode.dropped;
  },
};
