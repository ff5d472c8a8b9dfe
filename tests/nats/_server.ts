/**
 * Test fixtures for the NATS tests: a real `nats-server -js` on a free
 * loopback port with a temporary store (restartable on the same port and
 * store), and bgproc worker processes (each its own process group and work
 * root, as separate "machines").
 */

import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import type { Cluster } from "../../src/nats/_connection.ts";

/** A running nats-server. */
export interface NatsServer extends AsyncDisposable {
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** The JetStream store folder. */
  readonly storeDir: string;
  /** Its process id now (another after a restart; `undefined` while stopped). */
  readonly pid: number | undefined;
  /** Stop it (SIGTERM, then wait); the store stays. */
  stop(): Promise<void>;
  /** Start it again on the same port with the same store. */
  restart(): Promise<void>;
}

function nextFreePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The nats-server executable: `$NATS_SERVER`, else `nats-server` on PATH or in /usr/sbin. */
export function natsServerPath(): string {
  const env = Deno.env.get("NATS_SERVER");
  if (env !== undefined) return env;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/usr/local/sbin"])) {
    try {
      if (Deno.statSync(`${dir}/nats-server`).isFile) return `${dir}/nats-server`;
    } catch {
      // Not here.
    }
  }
  return "nats-server";
}

async function waitUntilReady(url: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (true) {
    try {
      const nc = await connect({ servers: url, reconnect: false, timeout: 500 });
      await nc.close();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`nats-server at ${url} did not start`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** Start `nats-server -js -a 127.0.0.1 -p <free port> -sd <temp store>`. */
export async function startNatsServer(): Promise<NatsServer> {
  const storeDir = await Deno.makeTempDir({ prefix: "bgproc-nats-store-" });
  const port = nextFreePort();
  const url = `nats://127.0.0.1:${port}`;
  let child: Deno.ChildProcess | undefined;
  const start = async () => {
    child = new Deno.Command(natsServerPath(), {
      args: ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitUntilReady(url);
  };
  const stop = async () => {
    if (child === undefined) return;
    const running = child;
    child = undefined;
    try {
      running.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await running.status;
  };
  await start();
  return {
    url,
    port,
    storeDir,
    get pid() {
      return child?.pid;
    },
    stop,
    async restart() {
      await stop();
      await start();
    },
    async [Symbol.asyncDispose]() {
      await stop();
      await Deno.remove(storeDir, { recursive: true }).catch(() => {});
    },
  };
}

const CLI = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
/** The permissions `deno task bgproc` grants: the worker must need no more. */
const TASK_PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-env",
  "--allow-net",
  "--allow-sys=hostname",
];

/** A bgproc worker process. */
export interface WorkerProcess extends AsyncDisposable {
  readonly pid: number;
  readonly workDir: string;
  /** Everything it printed so far. */
  readonly output: string[];
  /** SIGKILL its whole process group (a machine losing power). */
  killGroup(): Promise<void>;
  /** SIGTERM it and wait for a graceful exit. */
  stop(): Promise<Deno.CommandStatus>;
  /** Settles when it printed a line containing `text`. */
  printed(text: string, timeoutMs?: number): Promise<void>;
}

/**
 * Start `bgproc worker` (the real command line) with its own work root, in its own process group; `env` is added to
 * this process's environment.
 */
export async function startWorker(
  url: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<WorkerProcess> {
  const workDir = await Deno.makeTempDir({ prefix: "bgproc-nats-worker-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...TASK_PERMISSIONS, CLI, "worker", "--nats", url, "--work-dir", workDir, ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  const output: string[] = [];
  const listeners = new Set<() => void>();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      output.push(...text.split("\n").filter((line) => line !== ""));
      for (const listener of listeners) listener();
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let ended: Promise<Deno.CommandStatus> | undefined;
  const end = () => ended ??= Promise.all([child.status, drained]).then(([status]) => status);
  const worker: WorkerProcess = {
    pid: child.pid,
    workDir,
    output,
    async killGroup() {
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
      await end();
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      return await end();
    },
    printed(text: string, timeoutMs = 60_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (output.some((line) => line.includes(text))) {
            clearTimeout(timer);
            listeners.delete(check);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`worker ${child.pid} did not print '${text}': ${output.join("\n")}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async [Symbol.asyncDispose]() {
      await worker.stop();
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
    },
  };
  await worker.printed("ready");
  return worker;
}

/** `bgproc ARGS` with the permissions `deno task bgproc` grants, without this process's INIT_CWD. */
export function bgprocCommand(args: string[], options: Deno.CommandOptions = {}): Deno.Command {
  const env = Deno.env.toObject();
  delete env.INIT_CWD;
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...TASK_PERMISSIONS, CLI, ...args],
    stdin: "null",
    clearEnv: true,
    env: { ...env, NO_COLOR: "1" },
    ...options,
  });
}

/** Settles once the work queue holds a message on `subject` (a job added is queued), at most 10 s. */
export async function untilQueued(cluster: Cluster, subject = cluster.names.queueSubject([])): Promise<void> {
  const deadline = Date.now() + 10_000;
  const held = async () => {
    const info = await cluster.jsm.streams.info(cluster.names.jobsStream, { subjects_filter: subject });
    return (info.state.subjects?.[subject] ?? 0) > 0;
  };
  while (!await held()) {
    if (Date.now() > deadline) throw new Error(`the work queue held no message on ${subject} within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
