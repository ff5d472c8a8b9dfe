/** `bgproc serve`: the job service and its dashboard, until Ctrl-C or SIGTERM. */

// deno-lint-ignore-file no-console
import { serve } from "../service/mod.ts";
import { positiveNumber } from "./_args.ts";
import type { Command } from "./_command.ts";
import { EnvironmentError, ExitCode, UsageError } from "./_errors.ts";
import { CLUSTER_FLAGS, MANAGER_FLAGS, openManager } from "./_manager_flags.ts";
import { userPath } from "./_paths.ts";

/** The `serve` command. */
export const serveCommand: Command = {
  name: "serve",
  summary: "serve the job API and live dashboard for the scripts in a folder",
  usage: "bgproc serve --scripts DIR [options]",
  notes: `Only the .py files directly inside DIR can be run, by file name. Binding to anything but loopback needs
--token (or $BGPROC_TOKEN); open the dashboard once as http://HOST:PORT/?token=TOKEN.

Exit status: 0 after Ctrl-C or SIGTERM, 2 bad usage or a bad port, 3 no Blender or the port is in use.`,
  flags: {
    scripts: { type: "string", value: "DIR", help: "the folder of scripts jobs may run" },
    outputs: { type: "string", value: "DIR", help: "a folder per job in DIR/NAME, as passed_data['output_dir']" },
    blends: {
      type: "string",
      value: "DIR",
      help: "render the .blend files in DIR from the API and dashboard (needs --outputs)",
    },
    host: { type: "string", value: "ADDR", help: "the address to listen on (default: 127.0.0.1)" },
    port: { type: "string", value: "N", help: "the port (default: $PORT, else 8000; 0 picks a free one)" },
    token: { type: "string", value: "TOKEN", help: "the bearer token requests must carry (default: $BGPROC_TOKEN)" },
    "max-queued": { type: "string", value: "N", help: "refuse jobs with 429 past N queued (default: 100)" },
    "keep-finished": { type: "string", value: "N", help: "keep the last N finished jobs (default: 100)" },
    timeout: { type: "string", value: "S", help: "the timeout of jobs that set none, in seconds (default: 600)" },
    ...MANAGER_FLAGS,
    ...CLUSTER_FLAGS,
  },
  async run({ flags, positionals }) {
    if (positionals.length > 0) throw new UsageError(`serve takes no arguments, not '${positionals[0]}'`);
    if (typeof flags.scripts !== "string") throw new UsageError("serve needs --scripts DIR");
    const portText = typeof flags.port === "string" ? flags.port : Deno.env.get("PORT") ?? "8000";
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
      throw new UsageError(`the port must be a number from 0 to 65535, not '${portText}'`);
    }
    const hostname = typeof flags.host === "string" ? flags.host : "127.0.0.1";
    const token = typeof flags.token === "string" ? flags.token : Deno.env.get("BGPROC_TOKEN");
    const maxQueued = positiveNumber(flags, "max-queued", true, true);
    const keepFinished = positiveNumber(flags, "keep-finished", true, true);
    const timeout = positiveNumber(flags, "timeout", false, true);
    const scriptsDir = userPath(flags.scripts);
    try {
      if (!(await Deno.stat(scriptsDir)).isDirectory) throw new Error("not a folder");
    } catch (error) {
      throw new UsageError(`--scripts ${flags.scripts}: ${(error as Error).message.split(",")[0]}`);
    }
    const outputsDir = typeof flags.outputs === "string" ? userPath(flags.outputs) : undefined;
    const blendsDir = typeof flags.blends === "string" ? userPath(flags.blends) : undefined;
    if (blendsDir !== undefined && outputsDir === undefined) {
      throw new UsageError("--blends needs --outputs DIR: renders write their frames there");
    }
    if (outputsDir !== undefined) await Deno.mkdir(outputsDir, { recursive: true });
    await using manager = await openManager(flags);
    const stop = new AbortController();
    const signals = ["SIGINT", "SIGTERM"] as const;
    const onSignal = () => stop.abort();
    for (const signal of signals) Deno.addSignalListener(signal, onSignal);
    try {
      await serve({
        manager,
        scriptsDir,
        hostname,
        port: Number(portText),
        ...(token === undefined || token === "" ? {} : { token }),
        ...(maxQueued === undefined ? {} : { maxQueued }),
        ...(keepFinished === undefined ? {} : { keepFinished }),
        ...(timeout === undefined ? {} : { defaultTimeout: timeout * 1000 }),
        ...(outputsDir === undefined ? {} : { outputsDir }),
        ...(blendsDir === undefined ? {} : { blendsDir }),
        signal: stop.signal,
        onListen: ({ url }) => console.error(`bgproc service on ${url} (scripts from ${scriptsDir}); Ctrl-C stops it`),
      });
    } catch (error) {
      if (error instanceof TypeError) throw new UsageError(error.message);
      if (error instanceof Error && error.message.startsWith("Cannot listen")) {
        throw new EnvironmentError(error.message);
      }
      throw error;
    } finally {
      for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
    }
    console.error("bgproc service stopped");
    return ExitCode.ok;
  },
};
