/** `bgproc info`: the Blender, work folder and mode that would be used. */

// deno-lint-ignore-file no-console
import { dirname, join } from "node:path";
import { JobManager } from "../api/job_manager.ts";
import { BACKENDS } from "../backend.ts";
import { printTable } from "./_batch.ts";
import type { Command } from "./_command.ts";
import { ExitCode, UsageError } from "./_errors.ts";
import { MANAGER_FLAGS, managerOptions } from "./_manager_flags.ts";

/** The `info` command. */
export const infoCommand: Command = {
  name: "info",
  summary: "show the Blender, its version, the work folder, the mode, and the devices Cycles sees",
  usage: "bgproc info [options]",
  flags: { ...MANAGER_FLAGS, json: { type: "boolean", help: "print as JSON" } },
  async run({ flags, positionals }) {
    if (positionals.length > 0) throw new UsageError(`info takes no arguments, not '${positionals[0]}'`);
    await using manager = new JobManager(managerOptions(flags));
    const version = `Blender ${await manager.blenderVersion()}`;
    const jobScripts = BACKENDS.get(manager)!.jobScripts;
    // A Blender that cannot list its devices (a broken driver) still gets its report: devices "unknown".
    const devices = await manager.addJob({ script: join(jobScripts, "devices_job.py"), progress: "script" }).result()
      .then((listed) => listed.pythonData.devices as { type: string; name: string }[] | undefined, () => undefined);
    const report = {
      blender: manager.blenderPath,
      version,
      workDir: dirname(manager.workRoot),
      mode: manager.mode,
      maxWorkers: manager.maxWorkers,
      devices: devices === undefined
        ? "unknown"
        : devices.map((device) => `${device.type}: ${device.name}`).join("; ") || "none",
    };
    if (flags.json) console.log(JSON.stringify(report));
    else printTable(Object.entries(report).map(([key, value]) => [key, String(value)]));
    return ExitCode.ok;
  },
};
