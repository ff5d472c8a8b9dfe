/** `bgproc worker`: run jobs from a NATS JetStream work queue in local Blenders until Ctrl-C or SIGTERM. */

import { positiveNumber } from "./_args.ts";
import type { Command } from "./_command.ts";
import { UsageError } from "./_errors.ts";
import {
  AUTH_FLAG_SPECS as CLUSTER_FLAGS_AUTH,
  cliCredentials,
  cliSigning,
  signingFlagSpecs,
} from "./_manager_flags.ts";
import { userPath } from "./_paths.ts";

/** The `worker` command. */
export const workerCommand: Command = {
  name: "worker",
  summary: "run jobs from a NATS JetStream queue on this machine's Blender (see 'Many machines')",
  usage: "bgproc worker --nats URL [options]",
  notes: `On SIGTERM or Ctrl-C the worker takes no new job; running jobs may finish for --grace ms, then they are
handed back to the queue for another worker.

Exit status: 0 after a graceful stop, 1 on failure (an unreachable server, ...), 2 bad usage.`,
  flags: {
    nats: { type: "string", value: "URL", help: "the NATS server, e.g. nats://127.0.0.1:4222 (required)" },
    namespace: { type: "string", value: "NAME", help: "jobs, names and files are separate per namespace" },
    workers: { type: "string", value: "N", help: "jobs at once (default: 2)" },
    mode: { type: "string", value: "MODE", help: "fork, process or pool (default: fork)" },
    tags: { type: "string", value: "A,B", help: "this worker's tags; jobs may require them" },
    gpus: { type: "string", value: "0,1", help: "a GPU per slot: slot i renders on the i-th (round robin)" },
    blender: { type: "string", value: "PATH", help: "the Blender executable (default: $BLENDER, else PATH)" },
    "work-dir": { type: "string", value: "DIR", help: "work root and file cache folder (default: temporary)" },
    "ack-wait": { type: "string", value: "MS", help: "heartbeat lapse before a job is redelivered (default: 30000)" },
    "max-attempts": { type: "string", value: "N", help: "MaxDeliver of the consumers this worker makes (default: 3)" },
    grace: { type: "string", value: "MS", help: "how long running jobs may finish after SIGTERM (default: 30000)" },
    quiet: { type: "boolean", help: "print only failures and errors" },
    ...CLUSTER_FLAGS_AUTH,
    ...signingFlagSpecs("worker"),
  },
  async run({ flags, positionals }) {
    if (positionals.length > 0) throw new UsageError(`worker takes no arguments, not '${positionals[0]}'`);
    if (typeof flags.nats !== "string") throw new UsageError("worker needs --nats URL");
    const mode = flags.mode;
    if (mode !== undefined && mode !== "process" && mode !== "pool" && mode !== "fork") {
      throw new UsageError(`--mode must be process, pool or fork, not '${mode}'`);
    }
    const number = (name: string) => positiveNumber(flags, name, true);
    const [maxWorkers, ackWaitMs, maxAttempts, graceMs] = ["workers", "ack-wait", "max-attempts", "grace"].map(number);
    // Loaded only here, and by a specifier Deno cannot read ahead, so the other commands never fetch the NATS client.
    const signing = cliSigning(flags);
    const specifier = new URL("../nats/worker_main.ts", import.meta.url).href;
    const { runWorkerUntilSignal } = await import(specifier) as typeof import("../nats/worker_main.ts");
    return await runWorkerUntilSignal({
      nats: {
        servers: flags.nats,
        ...(typeof flags.namespace === "string" ? { namespace: flags.namespace } : {}),
        ...cliCredentials(flags),
      },
      ...(maxWorkers === undefined ? {} : { maxWorkers }),
      ...(mode === undefined ? {} : { mode }),
      ...(typeof flags.tags === "string" ? { tags: flags.tags.split(",").filter((tag) => tag !== "") } : {}),
      ...(typeof flags.gpus === "string" ? { gpus: flags.gpus.split(",").filter((gpu) => gpu !== "") } : {}),
      ...(typeof flags.blender === "string" ? { blender: userPath(flags.blender) } : {}),
      ...(typeof flags["work-dir"] === "string" ? { workDir: userPath(flags["work-dir"]) } : {}),
      ...(ackWaitMs === undefined ? {} : { ackWaitMs }),
      ...(maxAttempts === undefined ? {} : { maxAttempts }),
      ...(graceMs === undefined ? {} : { graceMs }),
      ...(signing === undefined ? {} : { signing }),
    }, { quiet: flags.quiet === true });
  },
};
