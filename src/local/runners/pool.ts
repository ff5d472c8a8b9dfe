/**
 * The pool runner: warm Blender workers that run many jobs each. An attempt
 * takes an idle worker (a new one is started when none is idle; the
 * supervisor keeps attempts to `maxWorkers`), sends it the job on its stdin,
 * and reads the worker's output as the job's until the job's end markers.
 * Killing an attempt kills its worker (and its process group).
 *
 * No socket: requests are JSON lines on the worker's stdin (which the worker
 * reads on a thread of its own and hides from jobs); the worker answers with
 * marker lines (`\x1ebgproc-ready`, `-done <token> <json>` on stdout, `-end
 * <token>` on stderr) among the job's output. A job runs in the worker's own
 * process and can read its token: pool mode is for trusted scripts.
 */

import { join } from "node:path";
import { lineSplitter } from "../job/lines.ts";
import { blenderArgs, LocalAttempt } from "./_local_attempt.ts";
import { WarmBlender } from "./_warm_blender.ts";
import { firstFallbackNotice } from "./_cgroup.ts";
import { type ExitStatus, OUTPUT_GRACE_MS } from "./_process_group.ts";
import type { AttemptHandle, AttemptPlan, Runner, WarmExit } from "./runner.ts";

/** The settings of a pool. */
export interface PoolRunnerOptions {
  readonly blender: string;
  readonly runtimeEntry: string;
  /** A folder for the workers' empty scene files. */
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

/** What starts a worker's marker line (see `python/bgproc/_pool.py`). */
const MARKER = "\x1ebgproc-";

/** The job a worker runs now. */
interface Lease {
  readonly token: string;
  readonly attempt: LocalAttempt;
  readonly ended: Record<"stdout" | "stderr", boolean>;
  exitCode: number | undefined;
  /** The worker's resident memory after the job, as it reported it. */
  residentMiB: number;
  /** Why the worker retires after this job (what the job left that cannot be undone), once it said so. */
  retiring: string | undefined;
  /** Settles when the job is done (reported and both streams at its end marker) or the worker died. */
  readonly done: PromiseWithResolvers<ExitStatus>;
}

/** One warm Blender that runs job after job. */
class Worker extends WarmBlender<void> {
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
  readonly #workers = new Map<string, Worker>();
  /** Workers whose process, output or connection is not done yet (an exited worker's pipes may still be closing). */
  readonly #unfinished = new Set<Worker>();
  readonly #idle: Worker[] = [];
  readonly #encoder = new TextEncoder();
  #nextWorker = 0;
  #nextToken = 0;
  #closed = false;
  #warmExit: ((exit: WarmExit) => void) | undefined;
  /** How many warm workers `prewarm` asked for: one that ends with its job (killed, retired) is replaced at once. */
  #keepWarm = 0;

  constructor(options: PoolRunnerOptions) {
    this.#options = options;
    Deno.mkdirSync(options.dir, { recursive: true });
  }

  /** Start workers until there are `count`, and keep that many warm: one that ends with its job is replaced. */
  prewarm(count: number): void {
    this.#keepWarm = count;
    this.#refill();
  }

  #refill(): void {
    const count = Math.min(this.#keepWarm, this.#options.maxWorkers());
    for (let i = this.#workers.size; i < count && !this.#closed; i++) {
      this.#idle.push(this.#startWorker(this.#options.factoryStartup));
    }
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
      try {
        worker = this.#takeWorker(plan.factoryStartup);
        await worker.ready.promise;
      } catch (startError) {
        return await attempt.end({ status: null, startError, blenderWouldNotStart: true });
      }
      const token = `${Deno.pid}-${++this.#nextToken}-${crypto.randomUUID()}`;
      lease = {
        token,
        attempt,
        ended: { stdout: false, stderr: false },
        exitCode: undefined,
        residentMiB: 0,
        retiring: undefined,
        done: Promise.withResolvers(),
      };
      worker.lease = lease;
      attempt.started(`${worker.commandLine}  # pool worker ${worker.id} (pid ${worker.process.pid}), job ${token}`);
      void worker.process.unjailed.then((why) => {
        if (why !== null && firstFallbackNotice()) {
          attempt.line(
            "stderr",
            `bgproc: ${why}; a process a killed job leaves in a session of its own may outlive it`,
          );
        }
      });
      if (attempt.killReason !== undefined) worker.process.kill("SIGKILL");
      // A dead worker ends the lease from its exit.
      await worker.process.send(
        this.#encoder.encode(JSON.stringify({ type: "run", token, jobDir: plan.jobDir }) + "\n"),
      );
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
        "--pool",
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
    worker.gone();
    this.#workers.delete(worker.id);
    const at = this.#idle.indexOf(worker);
    if (at >= 0) this.#idle.splice(at, 1);
    // Ready and idle (a retired worker leaves the idle list first): it died on its own. Its parent decides on a restart.
    if (at >= 0 && !this.#closed && worker.greeted) {
      const how = describeStatus(status);
      this.#warmExit?.({ kind: "pool worker", id: worker.id, factoryStartup: worker.factoryStartup, how });
    }
    worker.ready.reject(
      new Error(`the pool worker exited (${describeStatus(status)}) before it was ready${worker.lastOutput()}`),
    );
    // One that ended with its job (killed, timed out, retired): its successor starts now, not with the next job.
    // (A ready idle one that died is its parent's to restart, within the restart intensity.)
    if (at < 0 && worker.greeted) this.#refill();
  }

  /** Pass the worker's output lines to its current job, up to that job's end markers; take the worker's own markers. */
  async #readOutput(worker: Worker, stream: "stdout" | "stderr", signal: AbortSignal): Promise<void> {
    const lines = worker.process[stream].pipeThrough(new TextDecoderStream(), { signal }).pipeThrough(lineSplitter());
    for await (const line of lines) {
      const at = line.lastIndexOf(MARKER); // The worker's own marker comes last on its line.
      const lease = worker.lease;
      // A job's last line without a newline runs into the marker: the text before it is the job's.
      const text = at < 0 ? line : line.slice(0, at);
      if (text !== "" && lease !== undefined && !lease.ended[stream]) lease.attempt.line(stream, text);
      else if (text !== "" && !worker.greeted) worker.keep(`${stream}: ${text}`);
      if (at < 0 || this.#onMarker(worker, stream, line.slice(at + MARKER.length))) continue;
      if (lease !== undefined && !lease.ended[stream]) lease.attempt.line(stream, line.slice(at)); // Not the worker's.
    }
  }

  /** `ready <id> <pid>`, `done <token> <json>` (stdout), `end <token>` (stderr): whether it was the worker's. */
  #onMarker(worker: Worker, stream: "stdout" | "stderr", marker: string): boolean {
    const [kind, token, ...rest] = marker.split(" ");
    if (kind === "ready" && stream === "stdout" && !worker.greeted && token === worker.id) {
      worker.greet("pool worker");
      worker.ready.resolve();
      return true;
    }
    const lease = worker.lease;
    if (lease === undefined || token !== lease.token) return false;
    if (kind === "end" && stream === "stderr") {
      lease.ended.stderr = true;
      this.#settle(worker);
      return true;
    }
    if (kind !== "done" || stream !== "stdout") return false;
    let done: { exitCode?: unknown; retire?: unknown; residentMiB?: unknown };
    try {
      done = JSON.parse(rest.join(" "));
    } catch {
      return false;
    }
    lease.ended.stdout = true;
    lease.exitCode = Number(done.exitCode);
    lease.residentMiB = typeof done.residentMiB === "number" ? done.residentMiB : 0;
    if (typeof done.retire === "string") {
      // Dirty: the job ends once the worker has exited and all its output is read.
      lease.retiring = done.retire;
      lease.attempt.line("stderr", `bgproc: pool worker ${worker.id} is retired after this job: ${done.retire}`);
      worker.process.kill("SIGKILL");
    } else {
      this.#settle(worker);
    }
    return true;
  }

  /** End the lease once the job is reported done and both streams reached its end marker. */
  #settle(worker: Worker): void {
    const lease = worker.lease;
    if (lease === undefined || lease.exitCode === undefined || !lease.ended.stdout || !lease.ended.stderr) return;
    worker.lease = undefined;
    worker.jobs++;
    lease.done.resolve({ code: lease.exitCode, signal: null });
    // As the worker measured itself: the host may not read /proc (Deno asks -A for it), and a wrapped Blender's pid
    // is its wrapper's.
    const tooBig = lease.residentMiB > this.#options.maxWorkerMemoryMiB;
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
