/**
 * The backends the job-level suite runs on: `process`, `pool` and `fork` (local Blenders), and `nats` (a loopback
 * nats-server and one `bgproc worker --mode fork` started through the CLI, shared by the file's tests). A file that
 * imports this and runs on `nats` starts the cluster when it loads, outside any test, so the sanitizers see none
 * of it; it is killed when the file's process ends.
 */

import { join } from "node:path";
import { JobManager, type JobManagerOptions } from "../mod.ts";
import { bgprocCommand, natsServerPath } from "./nats/_server.ts";

/** Where a job-level test runs its jobs. */
export type BackendName = "process" | "pool" | "fork" | "nats";

/**
 * The backends the suite runs on: every one, or those named in `BGPROC_SUITE_BACKENDS` (`fork,process,pool`: how
 * tests/permissions_test.ts runs the suite under the README's permissions, which do not include the network).
 */
export const BACKEND_NAMES: readonly BackendName[] = suiteBackends();

function suiteBackends(): BackendName[] {
  const all: BackendName[] = ["process", "pool", "fork", "nats"];
  const named = Deno.env.get("BGPROC_SUITE_BACKENDS");
  if (named === undefined || named === "") return all;
  const chosen = named.split(",").map((name) => name.trim());
  for (const name of chosen) {
    if (!all.includes(name as BackendName)) throw new Error(`BGPROC_SUITE_BACKENDS: no backend '${name}'`);
  }
  return chosen as BackendName[];
}

/** The namespace the file's cluster tests use. */
const NAMESPACE = "suite";

interface SharedCluster {
  readonly url: string;
}

let cluster: Promise<SharedCluster> | undefined;

/** Start the file's cluster now (call at the top level of a test file, before its tests). */
export function startSharedCluster(): Promise<SharedCluster> {
  if (!BACKEND_NAMES.includes("nats")) return Promise.resolve({ url: "" }); // Not in this run.
  cluster ??= launch();
  return cluster;
}

/** A manager on `backend` with `options` (the mode of a local backend; the cluster for `nats`). */
export async function managerOn(backend: BackendName, options: JobManagerOptions = {}): Promise<JobManager> {
  if (backend !== "nats") return new JobManager({ ...options, mode: backend });
  const { url } = await startSharedCluster();
  const { mode: _, maxWorkers: __, ...rest } = options;
  const manager = new JobManager({ maxAttempts: 1, ...rest, nats: { servers: url, namespace: NAMESPACE } });
  await manager.ready();
  return manager;
}

async function launch(): Promise<SharedCluster> {
  const dir = Deno.makeTempDirSync({ prefix: "bgproc-suite-cluster-" });
  const port = freePort();
  const url = `nats://127.0.0.1:${port}`;
  const server = new Deno.Command(natsServerPath(), {
    args: ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", join(dir, "store")],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  server.unref();
  const args = ["worker", "--nats", url, "--namespace", NAMESPACE, "--workers", "2", "--mode", "fork"];
  const workers: Deno.ChildProcess[] = [];
  globalThis.addEventListener("unload", () => {
    for (const pid of [...workers.map((worker) => -worker.pid), server.pid]) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    Deno.removeSync(dir, { recursive: true });
  });
  // Ready once the server takes connections and the worker heartbeats: a manager's health is "ok" then.
  const deadline = Date.now() + 120_000;
  const tooLate = (what: string) => {
    if (Date.now() > deadline) throw new Error(`the suite's cluster did not start: ${what}`);
    return new Promise((resolve) => setTimeout(resolve, 100));
  };
  let manager = new JobManager({ nats: { servers: url, namespace: NAMESPACE } });
  while (!(await manager.ready().then(() => true, () => false))) {
    await manager.close();
    await tooLate("nats-server takes no connection");
    manager = new JobManager({ nats: { servers: url, namespace: NAMESPACE } });
  }
  // Only now the worker: one started before the server listens gives up at once (it cannot connect).
  let exited: string | undefined;
  const startWorker = () => {
    // Its output goes nowhere: read through this process's ops, a test's sanitizers would see it.
    const worker = bgprocCommand([...args, "--work-dir", dir, "--ack-wait", "5000"], {
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn();
    worker.unref();
    exited = undefined;
    void worker.status.then((status) => exited = `the worker exited with code ${status.code}`);
    workers.push(worker);
  };
  startWorker();
  try {
    for (let restarts = 0; manager.health.status !== "ok";) {
      if (exited !== undefined && restarts++ < 2) startWorker(); // Once more, for a start that met a busy machine.
      await tooLate(`${exited ?? "the worker runs"}; ${JSON.stringify(manager.health)}`);
    }
  } finally {
    await manager.close();
  }
  return { url };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
