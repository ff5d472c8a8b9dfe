/**
 * The pool runner: warm Blender workers that run many jobs each. An attempt
 * takes an idle worker (a new one is started when none is idle; the
 * supervisor keeps attempts to `maxWorkers`), sends it the job over a Unix
 * socket, and reads the worker's output as the job's until the job's end
 * marker. Killing an attempt kills its worker (and its process group).
 *
 * Requests and completions travel over the socket, one JSON message per
 * line; a job's `print` output goes to stdout/stderr and can never be taken
 * for one.
 */

import { join } from "node:path";
import { lineSplitter } from "../job/lines.ts";
import { blenderArgs, LocalAttempt } from "./_local_attempt.ts";
import { WarmBlender } from "./_warm_blender.ts";
import { type ExitStatus, OUTPUT_GRACE_MS } from "./_process_group.ts";
import type { AttemptHandle, AttemptPlan, Runner, WarmExit } from "./runner.ts";

/** The settings of a pool. */
export interface PoolRunnerOptions {
  readonly blender: string;
  readonly runtimeEntry: string;
  /** A folder for the socket and the workers' empty scene files. */
  readonly dir: string;
  /** Retire a worker after this many jobs. */
  readonly maxJobsPerWorker: number;
  /** Retire a worker whose resident memory is above this many MiB after a job. */
  readonly maxWorkerMemoryMiB: number;
  /** The manager's default startup (`--factory-startup` or not): what `prewarm` starts. */
  readonly factoryStartup: boolean;
  /** The manager's `addons`: every worker enables them when it starts, so jobs that ask for them leave it clean. */
  readonly addons: readonly string[];
  /** The manager's `maxWorkers` now: starting a worker of one startup flavour beyond it retires an idle one of the other. */
  readonly maxWorkers: () => number;
}

const END_MARKER = "\x1ebgproc-end ";

/** The job a worker runs now. */
interface Lease {
  readonly token: string;
  readonly attempt: LocalAttempt;
  readonly ended: Record<"stdout" | "stderr", boolean>;
  exitCode: number | undefined;
  /** Why the worker retires after this job (what the job left that cannot be undone), once it said so. */
  retiring: string | undefined;
  /** Settles when the job is done (reported and both streams at its end marker) or the worker died. */
  readonly done: PromiseWithResolvers<ExitStatus>;
}

/** One warm Blender that runs job after job. */
class Worker extends WarmBlender<Deno.UnixConn> {
  jobs = 0;
  lease: Lease | undefined;
  exited = false;
}

/**
 * Runs attempts on warm workers; no worker starts before the first attempt (or `prewarm`). Workers are kept per
 * startup flavour (`--factory-startup` or not): a job runs on an idle worker started the way it asks, else on a new
 * one; when that would make more workers than `maxWorkers`, an idle worker of the other flavour is retired first.
 */
export class PoolRunner implements Runner {
  readonly #options: PoolRunnerOptions;
  readonly #socketPath: string;
  readonly #listener: Deno.UnixListener;
  readonly #workers = new Map<string, Worker>();
  /** Workers whose process, output or connection is not done yet (an exited worker's pipes may still be closing). */
  readonly #unfinished = new Set<Worker>();
  readonly #idle: Worker[] = [];
  readonly #greetings = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  readonly #encoder = new TextEncoder();
  #nextWorker = 0;
  #nextToken = 0;
  #closed = false;
  #warmExit: ((exit: WarmExit) => void) | undefined;

  constructor(options: PoolRunnerOptions) {
    this.#options = options;
    this.#socketPath = join(options.dir, "pool.sock");
    const listener = Deno.listen({ transport: "unix", path: this.#socketPath });
    this.#listener = listener;
    this.#accepting = (async () => {
      for await (const connection of listener) {
        const greeting: Promise<void> = this.#greet(connection).finally(() => this.#greetings.delete(greeting));
        this.#greetings.add(greeting);
      }
    })().catch(() => {});
  }

  /** Start workers until there are `count`. */
  prewarm(count: number): void {
    for (let i = this.#workers.size; i < count; i++) this.#idle.push(this.#startWorker(this.#options.factoryStartup));
  }

  onWarmExit(listener: (exit: WarmExit) => void): void {
    this.#warmExit = listener;
  }

  /** The parent's restart of a worker that exited on its own (while there is room for it). */
  restartWarm(factoryStartup: boolean): void {
    if (!this.#closed && this.#workers.size < this.#options.maxWorkers()) {
      this.#idle.push(this.#startWorker(factoryStartup));
    }
  }

  start(plan: AttemptPlan): AttemptHandle {
    const attempt = new LocalAttempt(plan, `a pool worker of ${this.#options.blender}`);
    let worker: Worker | undefined;
    let lease: Lease | undefined;
    const gone = (async () => {
      try {
        await attempt.prepare();
      } catch (startError) {
        return await attempt.end({ status: null, startError });
      }
      if (attempt.killReason !== undefined) return await attempt.end({ status: null });
      worker = this.#takeWorker(plan.factoryStartup);
      let connection: Deno.UnixConn;
      try {
        connection = await worker.ready.promise;
      } catch (startError) {
        return await attempt.end({ status: null, startError, blenderWouldNotStart: true });
      }
      const token = `${Deno.pid}-${++this.#nextToken}-${crypto.randomUUID()}`;
      lease = {
        token,
        attempt,
        ended: { stdout: false, stderr: false },
        exitCode: undefined,
        retiring: undefined,
        done: Promise.withResolvers(),
      };
      worker.lease = lease;
      attempt.started(`${worker.commandLine}  # pool worker ${worker.id} (pid ${worker.process.pid}), job ${token}`);
      if (attempt.killReason !== undefined) worker.process.kill("SIGKILL");
      await connection.write(this.#encoder.encode(JSON.stringify({ type: "run", token, jobDir: plan.jobDir }) + "\n"))
        .catch(() => {}); // A dead worker ends the lease from its exit.
      await attempt.end({ status: await lease.done.promise });
    })().catch(() => {});
    return {
      events: attempt.events,
      kill: (reason) => {
        attempt.killReason ??= reason;
        if (lease !== undefined && worker?.lease === lease) worker.process.kill("SIGKILL");
      },
      gone,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const worker of this.#workers.values()) worker.process.kill("SIGKILL");
    await Promise.all([...this.#unfinished].map((worker) => worker.done));
    this.#listener.close();
    await this.#accepting;
    await Promise.all(this.#greetings);
  }

  /** The most recently idle worker of the flavour (warm caches), else a new one. */
  #takeWorker(factoryStartup: boolean): Worker {
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const worker = this.#idle[i]!;
      if (worker.exited || worker.factoryStartup !== factoryStartup) continue;
      this.#idle.splice(i, 1);
      return worker;
    }
    const other = this.#idle.find((worker) => !worker.exited && worker.factoryStartup !== factoryStartup);
    if (other !== undefined && this.#workers.size >= this.#options.maxWorkers()) {
      this.#idle.splice(this.#idle.indexOf(other), 1);
      other.process.kill("SIGKILL"); // Retired: its slot goes to a worker of the flavour asked for.
    }
    return this.#startWorker(factoryStartup);
  }

  #startWorker(factoryStartup: boolean): Worker {
    const id = String(++this.#nextWorker);
    const worker = new Worker(
      id,
      this.#options.blender,
      blenderArgs(this.#options.runtimeEntry, null, [
        "--pool-socket",
        this.#socketPath,
        "--worker-id",
        id,
        "--empty-blend",
        join(this.#options.dir, `empty-${id}.blend`),
        ...(this.#options.addons.length === 0 ? [] : ["--addons", this.#options.addons.join(",")]),
      ], factoryStartup),
      factoryStartup,
    );
    // A process a job left behind (in a session of its own) may hold the worker's pipes open after the worker is
    // gone: reading stops OUTPUT_GRACE_MS after the exit, so the job's end never waits on it.
    const giveUp = new AbortController();
    const reading = [
      this.#readOutput(worker, "stdout", giveUp.signal),
      this.#readOutput(worker, "stderr", giveUp.signal),
    ]
      .map((read) => read.catch(() => {}));
    let grace: ReturnType<typeof setTimeout> | undefined;
    const exit = worker.process.status.then((status) => {
      this.#onExit(worker, status);
      grace = setTimeout(() => giveUp.abort(), OUTPUT_GRACE_MS);
      return worker.process.closeStdin().then(() => status);
    });
    worker.done = Promise.all([exit, ...reading]).then(([status]) => {
      clearTimeout(grace);
      // Only now, with the worker's last lines read (a traceback before a crash), does its job end.
      const lease = worker.lease;
      worker.lease = undefined;
      // A worker retired after its job ends that job with the job's own exit code, not with the kill.
      const retired = lease?.retiring !== undefined && lease.exitCode !== undefined;
      lease?.done.resolve(retired ? { code: lease.exitCode!, signal: null } : status);
    });
    this.#workers.set(id, worker);
    this.#unfinished.add(worker);
    void worker.done.then(() => this.#unfinished.delete(worker));
    return worker;
  }

  #onExit(worker: Worker, status: ExitStatus): void {
    worker.exited = true;
    this.#workers.delete(worker.id);
    const at = this.#idle.indexOf(worker);
    if (at >= 0) this.#idle.splice(at, 1);
    // Ready and idle (a retired worker leaves the idle list first): it died on its own. Its parent decides on a restart.
    if (at >= 0 && !this.#closed && worker.connection !== undefined) {
      const how = describeStatus(status);
      this.#warmExit?.({ kind: "pool worker", id: worker.id, factoryStartup: worker.factoryStartup, how });
    }
    worker.ready.reject(new Error(`the pool worker exited (${describeStatus(status)}) before it was ready`));
    try {
      worker.connection?.close();
    } catch {
      // Closed already.
    }
  }

  /** Read a new connection's first line (`ready` with the worker id), hand it to its worker, then read `done`s. */
  async #greet(connection: Deno.UnixConn): Promise<void> {
    const reader = connection.readable.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter()).getReader();
    try {
      const first = await reader.read();
      const hello = first.done ? undefined : JSON.parse(first.value);
      const worker = hello?.type === "ready" ? this.#workers.get(String(hello.worker)) : undefined;
      if (worker === undefined || worker.exited) return connection.close();
      worker.connection = connection;
      worker.ready.resolve(connection);
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        const message = JSON.parse(value);
        const lease = worker.lease;
        if (message.type === "done" && lease !== undefined && message.token === lease.token) {
          lease.exitCode = Number(message.exitCode);
          if (typeof message.retire === "string") {
            // Dirty: the job ends once the worker has exited and all its output is read.
            lease.retiring = message.retire;
            lease.attempt.line(
              "stderr",
              `bgproc: pool worker ${worker.id} is retired after this job: ${message.retire}`,
            );
            worker.process.kill("SIGKILL");
          } else {
            this.#settle(worker);
          }
        }
      }
    } catch {
      // The worker went away; its exit ends its lease.
    } finally {
      reader.releaseLock();
    }
  }

  /** Pass the worker's output lines to its current job, up to that job's end marker. */
  async #readOutput(worker: Worker, stream: "stdout" | "stderr", signal: AbortSignal): Promise<void> {
    const lines = worker.process[stream].pipeThrough(new TextDecoderStream(), { signal }).pipeThrough(lineSplitter());
    for await (const line of lines) {
      const lease = worker.lease;
      if (lease === undefined || lease.ended[stream]) continue; // Between jobs: Blender's own chatter.
      if (line === END_MARKER + lease.token) {
        lease.ended[stream] = true;
        this.#settle(worker);
      } else {
        lease.attempt.line(stream, line);
      }
    }
  }

  /** End the lease once the job is reported done and both streams reached its end marker. */
  #settle(worker: Worker): void {
    const lease = worker.lease;
    if (lease === undefined || lease.exitCode === undefined || !lease.ended.stdout || !lease.ended.stderr) return;
    worker.lease = undefined;
    worker.jobs++;
    lease.done.resolve({ code: lease.exitCode, signal: null });
    const tooBig = residentMiB(worker.process.pid) > this.#options.maxWorkerMemoryMiB;
    if (this.#closed || worker.jobs >= this.#options.maxJobsPerWorker || tooBig) {
      worker.process.kill("SIGKILL"); // Retire it.
    } else {
      this.#idle.push(worker);
    }
  }
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
