/**
 * The `bgproc worker` command: parses its arguments, runs
 * {@linkcode runWorker} until SIGTERM or SIGINT, and prints what the worker
 * does, one line per event. The CLI calls {@linkcode workerMain}; the file
 * also runs on its own (`deno run -A src/nats/worker_main.ts --nats URL`).
 */
// deno-lint-ignore-file no-console

import { parseArgs } from "node:util";
import { AUTH_FLAGS, authUsage, credentialsFromFlags } from "./_auth_flags.ts";
import { runWorker, type RunWorkerOptions } from "./worker.ts";

/** The usage text of the worker command. */
export const WORKER_USAGE = `Usage: bgproc worker --nats URL [options]

Runs jobs from a NATS JetStream work queue in local background Blenders until SIGTERM or SIGINT
(then running jobs may finish for --grace ms, after which they are handed back to the queue).

Options:
  --nats URL            the NATS server (required), e.g. nats://127.0.0.1:4222
  --namespace NAME      jobs, names and files are separate per namespace (default: default)
  --workers N           jobs at once (default: 2)
  --mode MODE           fork, process or pool (default: fork)
  --tags A,B            this worker's tags; jobs may require them
  --blender PATH        the Blender executable (default: $BLENDER, else blender on PATH)
  --work-dir DIR        work root and file cache folder (default: the temporary folder)
  --ack-wait MS         heartbeat lapse before a job is redelivered (default: 30000)
  --max-attempts N      MaxDeliver of the consumers this worker makes (default: 3)
  --grace MS            how long running jobs may finish after SIGTERM (default: 30000)
  --quiet               print only errors
  --signing-key FILE    sign this worker's results with this private key (bgproc keygen NAME makes NAME.key)
  --trust FILE          run only jobs signed by the host with this public key (NAME.pub); repeatable

Credentials (as the server asks; secrets from files or the environment, never argv):
${authUsage(22)}
`;

/**
 * Run the worker command.
 *
 * @param args The arguments after `worker`.
 * @returns The exit code: 0 after a graceful stop, 2 on bad arguments, 1 on failure.
 * @example Start a worker from a script
 * ```ts ignore
 * import { workerMain } from "@bgproc/blender/nats";
 *
 * Deno.exit(await workerMain(["--nats", "nats://127.0.0.1:4222", "--workers", "2"]));
 * ```
 */
export async function workerMain(args: string[]): Promise<number> {
  let options: RunWorkerOptions;
  let quiet: boolean;
  try {
    const { values } = parseArgs({
      args,
      options: {
        nats: { type: "string" },
        namespace: { type: "string" },
        workers: { type: "string" },
        mode: { type: "string" },
        tags: { type: "string" },
        blender: { type: "string" },
        "work-dir": { type: "string" },
        "ack-wait": { type: "string" },
        "max-attempts": { type: "string" },
        grace: { type: "string" },
        quiet: { type: "boolean" },
        "signing-key": { type: "string" },
        trust: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
        ...Object.fromEntries(
          Object.entries(AUTH_FLAGS).map((
            [name, flag],
          ) => [name, { type: flag.value === undefined ? "boolean" : "string" }]),
        ) as Record<string, { type: "string" | "boolean" }>,
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help === true) {
      console.log(WORKER_USAGE);
      return 0;
    }
    if (values.nats === undefined) throw new TypeError("--nats URL is required");
    if (values.mode !== undefined && values.mode !== "process" && values.mode !== "pool" && values.mode !== "fork") {
      throw new RangeError(`--mode must be process, pool or fork: current value is ${values.mode}`);
    }
    quiet = values.quiet === true;
    options = {
      nats: {
        servers: values.nats,
        ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
        ...credentialsFromFlags(values),
      },
      ...(values.workers === undefined ? {} : { maxWorkers: Number(values.workers) }),
      ...(values.mode === undefined ? {} : { mode: values.mode }),
      ...(values.tags === undefined ? {} : { tags: values.tags.split(",").filter((tag) => tag !== "") }),
      ...(values.blender === undefined ? {} : { blender: values.blender }),
      ...(values["work-dir"] === undefined ? {} : { workDir: values["work-dir"] }),
      ...(values["ack-wait"] === undefined ? {} : { ackWaitMs: Number(values["ack-wait"]) }),
      ...(values["max-attempts"] === undefined ? {} : { maxAttempts: Number(values["max-attempts"]) }),
      ...(values.grace === undefined ? {} : { graceMs: Number(values.grace) }),
      ...(values["signing-key"] === undefined && values.trust === undefined ? {} : {
        signing: {
          ...(values["signing-key"] === undefined ? {} : { key: values["signing-key"] }),
          ...(values.trust === undefined ? {} : { trust: values.trust }),
        },
      }),
    };
  } catch (error) {
    console.error(`bgproc worker: ${error instanceof Error ? error.message : String(error)}\n\n${WORKER_USAGE}`);
    return 2;
  }
  return await runWorkerUntilSignal(options, { quiet });
}

/**
 * Run a worker until SIGTERM or SIGINT, printing one line per event (only
 * failures and errors when `quiet`): what `bgproc worker` does once its
 * arguments are parsed.
 *
 * @param options The worker's options (its `signal` and `onEvent` are this function's).
 * @param output `quiet: true` prints only failures and errors.
 * @returns The exit code: 0 after a graceful stop, 1 on failure.
 * @example Run a worker from a script until Ctrl-C
 * ```ts ignore
 * import { runWorkerUntilSignal } from "@bgproc/blender/nats";
 *
 * Deno.exit(await runWorkerUntilSignal({ nats: { servers: "nats://127.0.0.1:4222" } }, { quiet: false }));
 * ```
 */
export async function runWorkerUntilSignal(
  options: Omit<RunWorkerOptions, "signal" | "onEvent">,
  output: { quiet: boolean },
): Promise<number> {
  const { quiet } = output;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    await runWorker({
      ...options,
      signal: stop.signal,
      onEvent: (event) => {
        const stamp = new Date().toISOString();
        switch (event.type) {
          case "ready":
            if (!quiet) {
              console.log(
                `${stamp} ready ${event.info.id} blender ${event.info.blenderVersion} ${event.info.mode} ` +
                  `slots ${event.info.slots} tags [${event.info.tags.join(",")}]`,
              );
            }
            return;
          case "started":
          case "completed":
            if (!quiet) console.log(`${stamp} ${event.type} ${event.name} attempt ${event.attempt}`);
            return;
          case "failed":
            console.log(`${stamp} failed ${event.name} attempt ${event.attempt}\n${event.report}`);
            return;
          case "handed-back":
            console.log(`${stamp} handed back ${event.name}`);
            return;
          case "unreadable":
            console.error(`${stamp} unreadable: ${event.subject}: ${event.problem} (skipped, dead-lettered)`);
            return;
          case "stopping":
            if (!quiet) console.log(`${stamp} stopping: no new jobs; running jobs may finish`);
            return;
          case "error":
            console.error(
              `${stamp} error: ${event.error instanceof Error ? event.error.message : String(event.error)}`,
            );
            return;
          default:
            event satisfies never;
        }
      },
    });
    return 0;
  } catch (error) {
    console.error(`bgproc worker: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGTERM", onSignal);
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}

if (import.meta.main) Deno.exit(await workerMain(Deno.args));
