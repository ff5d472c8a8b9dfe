/**
 * Pool mode's spawner: warm Blender workers that run many jobs each. An
 * attempt gets a lease on an idle worker (a new one is started when none is
 * idle; the supervisor keeps leases to `maxWorkers`), which looks to the Job
 * actor like a process of its own: the worker's output until the job's end
 * marker, and a status when the worker reports the job done (or dies).
 *
 * Requests and completions travel over a Unix socket, one JSON message per
 * line; a job's `print` output goes to stdout/stderr and can never be taken
 * for one. Killing a lease kills its worker (and its process group).
 */

import { join } from "node:path";
import { lineSplitter } from "./_lines.ts";
import { type ExitStatus, spawnDetached, type SpawnedProcess, type Spawner } from "./_spawner.ts";

/** The settings of a pool. */
export interface PoolOptions {
  readonly runtimeEntry: string;
  /** A folder for the socket and the workers' empty scene files. */
  readonly dir: string;
  /** Retire a worker after this many jobs. */
  readonly maxJobsPerWorker: number;
  /** Retire a worker whose resident memory is above this many MiB after a job. */
  readonly maxWorkerMemoryMiB: number;
}

const END_MARKER = "\x1ebgproc-end ";

interface Lease {
  readonly token: string;
  readonly streams: Record<"stdout" | "stderr", ReadableStreamDefaultController<Uint8Array>>;
  readonly ended: Record<"stdout" | "stderr", boolean>;
  exitCode: number | undefined;
  readonly status: PromiseWithResolvers<ExitStatus>;
}

interface Worker {
  readonly id: string;
  readonly process: SpawnedProcess;
  readonly ready: PromiseWithResolvers<Deno.UnixConn>;
  connection: Deno.UnixConn | undefined;
  jobs: number;
  /** Blender's own pid, from its `ready` message: a wrapper (script, bwrap) may stand between it and `process`. */
  blenderPid: number | undefined;
  lease: Lease | undefined;
  exited: boolean;
  /** Settles when the worker has exited and its pumps and connection are done. */
  readonly done: Promise<void>;
}

/** Start a pool; no worker starts before the first lease (or `prewarm`). */
export function startPool(options: PoolOptions): Spawner & { prewarm(count: number, blender: string): void } {
  const socketPath = join(options.dir, "pool.sock");
  const listener = Deno.listen({ transport: "unix", path: socketPath });
  const workers = new Map<string, Worker>();
  const idle: Worker[] = [];
  const encoder = new TextEncoder();
  let nextWorker = 0;
  let nextToken = 0;
  let closed = false;

  /** Read a new connection's first line (`ready` with the worker id) and hand it to its worker. */
  const greet = async (connection: Deno.UnixConn) => {
    const lines = connection.readable.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
    const reader = lines.getReader();
    let worker: Worker | undefined;
    try {
      const first = await reader.read();
      const hello = first.done ? undefined : JSON.parse(first.value);
      worker = hello?.type === "ready" ? workers.get(String(hello.worker)) : undefined;
      if (worker === undefined || worker.exited) {
        connection.close();
        return;
      }
      worker.connection = connection;
      if (Number.isSafeInteger(hello.pid)) worker.blenderPid = hello.pid;
      worker.ready.resolve(connection);
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        const message = JSON.parse(value);
        const lease = worker.lease;
        if (message.type === "done" && lease !== undefined && message.token === lease.token) {
          lease.exitCode = Number(message.exitCode);
          settle(worker);
        }
      }
    } catch {
      // The worker went away; its exit handler settles its lease.
    } finally {
      reader.releaseLock();
    }
  };

  const greetings = new Set<Promise<void>>();
  const accepting = (async () => {
    for await (const connection of listener) {
      const greeting: Promise<void> = greet(connection).finally(() => greetings.delete(greeting));
      greetings.add(greeting);
    }
  })().catch(() => {});

  const startWorker = (blender: string): Worker => {
    const id = String(++nextWorker);
    const process = spawnDetached(blender, [
      "--background",
      "--factory-startup",
      "-noaudio",
      "--python-exit-code",
      "1",
      "--python",
      options.runtimeEntry,
      "--",
      "--pool-socket",
      socketPath,
      "--worker-id",
      id,
      "--empty-blend",
      join(options.dir, `empty-${id}.blend`),
    ]);
    const ready = Promise.withResolvers<Deno.UnixConn>();
    ready.promise.catch(() => {});
    const worker: Worker = {
      id,
      process,
      ready,
      connection: undefined,
      jobs: 0,
      blenderPid: undefined,
      lease: undefined,
      exited: false,
      done: Promise.resolve(),
    };
    const pumps = [pump(worker, "stdout"), pump(worker, "stderr")];
    const exit = process.status.then((status) => {
      worker.exited = true;
      workers.delete(id);
      const at = idle.indexOf(worker);
      if (at >= 0) idle.splice(at, 1);
      ready.reject(new Error(`the pool worker exited (${describeStatus(status)}) before it was ready`));
      try {
        worker.connection?.close();
      } catch {
        // Closed already.
      }
      const lease = worker.lease;
      worker.lease = undefined;
      if (lease !== undefined) {
        for (const stream of ["stdout", "stderr"] as const) endStream(lease, stream);
        lease.status.resolve(status);
      }
    });
    (worker as { done: Promise<void> }).done = Promise.all([exit.then(() => process.closeStdin()), ...pumps])
      .then(() => {});
    workers.set(id, worker);
    return worker;
  };

  /** Route the worker's output lines to its current lease, up to that lease's end marker. */
  const pump = async (worker: Worker, stream: "stdout" | "stderr") => {
    const source = worker.process[stream].pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
    for await (const line of source) {
      const lease = worker.lease;
      if (lease === undefined || lease.ended[stream]) continue; // Between jobs: Blender's own chatter.
      if (line === END_MARKER + lease.token) {
        endStream(lease, stream);
        settle(worker);
      } else {
        lease.streams[stream].enqueue(encoder.encode(line + "\n"));
      }
    }
  };

  const endStream = (lease: Lease, stream: "stdout" | "stderr") => {
    if (lease.ended[stream]) return;
    lease.ended[stream] = true;
    lease.streams[stream].close();
  };

  /** Finish the lease once the job is reported done and both streams reached its end marker. */
  const settle = (worker: Worker) => {
    const lease = worker.lease;
    if (lease === undefined || lease.exitCode === undefined || !lease.ended.stdout || !lease.ended.stderr) return;
    worker.lease = undefined;
    worker.jobs++;
    lease.status.resolve({ code: lease.exitCode, signal: null });
    if (
      closed || worker.jobs >= options.maxJobsPerWorker ||
      residentMiB(worker.blenderPid ?? worker.process.pid) > options.maxWorkerMemoryMiB
    ) {
      retire(worker);
    } else {
      idle.push(worker);
    }
  };

  const retire = (worker: Worker) => {
    worker.process.kill("SIGKILL");
  };

  const lease = async (blender: string, jobDir: string): Promise<SpawnedProcess> => {
    let worker = idle.pop();
    while (worker !== undefined && worker.exited) worker = idle.pop();
    worker ??= startWorker(blender);
    const connection = await worker.ready.promise;
    const token = `${Deno.pid}-${++nextToken}-${crypto.randomUUID()}`;
    const streams = {} as Lease["streams"];
    const make = (name: "stdout" | "stderr") =>
      new ReadableStream<Uint8Array>({ start: (controller) => void (streams[name] = controller) });
    const stdout = make("stdout");
    const stderr = make("stderr");
    const current: Lease = {
      token,
      streams,
      ended: { stdout: false, stderr: false },
      exitCode: undefined,
      status: Promise.withResolvers<ExitStatus>(),
    };
    worker.lease = current;
    const leased = worker;
    await connection.write(encoder.encode(JSON.stringify({ type: "run", token, jobDir }) + "\n"));
    return {
      pid: leased.process.pid,
      stdout,
      stderr,
      status: current.status.promise,
      kill: (signal) => {
        if (leased.lease === current) leased.process.kill(signal);
      },
      closeStdin: () => Promise.resolve(),
    };
  };

  return {
    spawn: (command, _args, spawnOptions) => lease(command, spawnOptions.jobDir),
    prewarm(count, blender) {
      for (let i = workers.size; i < count; i++) idle.push(startWorker(blender));
    },
    async close() {
      closed = true;
      const all = [...workers.values()];
      for (const worker of all) worker.process.kill("SIGKILL");
      await Promise.all(all.map((worker) => worker.done));
      listener.close();
      await accepting;
      await Promise.all(greetings);
    },
  };
}

function describeStatus(status: ExitStatus): string {
  return status.signal === null ? `code ${status.code}` : status.signal;
}

function residentMiB(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match === null ? 0 : Number(match[1]) / 1024;
  } catch {
    return 0;
  }
}
