/**
 * The fork runner: a warm *zygote* Blender that never runs user code forks
 * one child per attempt (`python/bgproc/_zygote.py`). The child runs the job
 * exactly as process mode does, in a process group of its own, and exits;
 * everything the job did dies with it.
 *
 * The host and the zygote talk over the zygote's own pipes, no socket: fork
 * and kill requests as JSON lines on its stdin, and on its stdout frames
 * (`_frames.ts`): messages (`ready`/`forked`/`refused`/`exited`) and each
 * child's stdout and stderr, which the zygote reads from pipes of the
 * child's own and relays in turns, so a job's output reaches its attempt and
 * ends when the child and everything it started have closed it (or a second
 * after the child is reaped). Exits (signals included) come from the zygote,
 * which reaps its children. A zygote that does not end a killed child within
 * `KILL_GRACE_MS` is killed itself.
 *
 * A zygote that dies takes its running children with it (they die with
 * their parent); the next attempt starts a new one, and a zygote that cannot
 * start fails its attempt as a start failure, which the supervisor's restart
 * intensity bounds. Where forking is unsafe (the zygote says why), attempts
 * run in process mode, and each says so in its output and its `ranOn`.
 */

import { lineSplitter } from "../job/lines.ts";
import { Channel } from "../../channel.ts";
import { blenderArgs, LocalAttempt } from "./_local_attempt.ts";
import { WarmBlender } from "./_warm_blender.ts";
import { type ExitStatus, OUTPUT_GRACE_MS, type ProcessGroup } from "./_process_group.ts";
import { readFrames } from "./_frames.ts";
import { runPrepared } from "./process.ts";
import type { AttemptEvent, AttemptHandle, AttemptPlan, Runner, WarmExit } from "./runner.ts";

/** The settings of a fork runner. */
export interface ForkRunnerOptions {
  readonly blender: string;
  readonly runtimeEntry: string;
  /** The manager's default startup (`--factory-startup` or not): the zygote `prewarm` starts. */
  readonly factoryStartup: boolean;
}

/** How long a zygote may take to end a child it was told to kill before it is killed itself (with its children). */
const KILL_GRACE_MS = 5_000;

/** One stream of one child, from the zygote's frames to its attempt's lines. */
class ChildOutput {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Settles when the stream has ended and every line of it reached the attempt. */
  readonly done: Promise<void>;
  #ended = false;

  constructor(attempt: LocalAttempt, stream: "stdout" | "stderr") {
    const pipe = new TransformStream<Uint8Array, Uint8Array>();
    this.#writer = pipe.writable.getWriter();
    this.done = (async () => {
      const lines = pipe.readable.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
      for await (const line of lines) attempt.line(stream, line);
    })().catch(() => {});
  }

  /** Pass a chunk on; settles once it is taken (backpressure reaches the zygote's pipe). */
  write(chunk: Uint8Array): Promise<void> {
    return this.#ended ? Promise.resolve() : this.#writer.write(chunk).catch(() => {});
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    void this.#writer.close().catch(() => {});
  }
}

/** The zygote could not fork this attempt's child (no memory, no process left): it failed to start. */
class ForkFailed extends Error {}

/** One attempt on the zygote. */
class Lease {
  readonly id: number;
  readonly token: string;
  readonly attempt: LocalAttempt;
  readonly forked = Promise.withResolvers<number | string>();
  pid: number | undefined;
  status: ExitStatus | undefined;
  readonly exited = Promise.withResolvers<ExitStatus>();
  readonly output: Record<"stdout" | "stderr", ChildOutput>;
  /** Kills the zygote when it does not end a killed child in time. */
  watchdog: ReturnType<typeof setTimeout> | undefined;
  /** Set when the zygote died under the running child. */
  collateral: string | undefined;

  constructor(id: number, token: string, attempt: LocalAttempt) {
    this.id = id;
    this.token = token;
    this.attempt = attempt;
    this.forked.promise.catch(() => {});
    this.output = { stdout: new ChildOutput(attempt, "stdout"), stderr: new ChildOutput(attempt, "stderr") };
  }

  /** The child's exit, once. */
  exit(status: ExitStatus): void {
    clearTimeout(this.watchdog);
    this.status ??= status;
    this.exited.resolve(this.status);
  }
}

/** One warm Blender that forks. */
class Zygote extends WarmBlender<{ unsafe: string | null; blender: string }> {
  readonly leases = new Map<number, Lease>();
  exited: ExitStatus | undefined;
}

/**
 * Runs each attempt in a child forked from a warm zygote. There is a zygote per startup flavour (with
 * `--factory-startup` and without), each started on the first attempt that asks for it: a child inherits the
 * preferences, add-ons and `sys.path` its zygote started with.
 */
export class ForkRunner implements Runner {
  readonly #options: ForkRunnerOptions;
  readonly #encoder = new TextEncoder();
  /** The zygote each startup flavour forks from now (keyed by `factoryStartup`). */
  readonly #current = new Map<boolean, Zygote>();
  readonly #zygotes = new Set<Zygote>();
  /** Zygotes whose process or output is not done yet (an exited zygote's pipes may still be closing). */
  readonly #unfinished = new Set<Zygote>();
  #nextZygote = 0;
  #nextLease = 0;
  /** Why forking is unsafe on this Blender, per startup flavour, once a zygote of it said so. */
  readonly #unsafe = new Map<boolean, string>();
  #warmExit: ((exit: WarmExit) => void) | undefined;
  #closing = false;

  constructor(options: ForkRunnerOptions) {
    this.#options = options;
  }

  /** Start the zygote now instead of on the first attempt. */
  prewarm(): void {
    this.#liveZygote(this.#options.factoryStartup);
  }

  onWarmExit(listener: (exit: WarmExit) => void): void {
    this.#warmExit = listener;
  }

  /** The parent's restart of a zygote that exited on its own. */
  restartWarm(factoryStartup: boolean): void {
    if (!this.#closing && !this.#unsafe.has(factoryStartup)) this.#liveZygote(factoryStartup);
  }

  start(plan: AttemptPlan): AttemptHandle {
    const attempt = new LocalAttempt(plan, `a child of the fork-mode zygote of ${this.#options.blender}`);
    const events = new Channel<AttemptEvent>();
    let lease: Lease | undefined;
    let zygote: Zygote | undefined;
    let fallback: ProcessGroup | undefined;
    const gone = (async () => {
      const forwarding = (async () => {
        for await (const event of attempt.events) events.send(event);
        events.close();
      })();
      try {
        await this.#run(plan, attempt, (z, l) => [zygote, lease] = [z, l], (group) => fallback = group);
      } finally {
        await forwarding;
      }
    })().catch(() => {});
    return {
      events,
      kill: (reason) => {
        attempt.killReason ??= reason;
        fallback?.kill("SIGKILL");
        if (zygote !== undefined && lease !== undefined) this.#kill(zygote, lease);
      },
      gone,
    };
  }

  async close(): Promise<void> {
    this.#closing = true;
    for (const zygote of this.#zygotes) zygote.process.kill("SIGKILL"); // Its children die with it (PDEATHSIG).
    await Promise.all([...this.#unfinished].map((zygote) => zygote.done));
  }

  /** One attempt, from its job directory to its end. */
  async #run(
    plan: AttemptPlan,
    attempt: LocalAttempt,
    onLease: (zygote: Zygote, lease: Lease) => void,
    onFallback: (group: ProcessGroup) => void,
  ): Promise<void> {
    try {
      await attempt.prepare();
    } catch (startError) {
      return await attempt.end({ status: null, startError });
    }
    // A zygote that refuses to fork (a thread appeared in it) is replaced once; a second refusal means unsafe.
    const flavour = plan.factoryStartup;
    for (let tries = 0; tries < 2 && !this.#unsafe.has(flavour); tries++) {
      if (attempt.killReason !== undefined) return await attempt.end({ status: null });
      let zygote: Zygote;
      let ready;
      try {
        zygote = this.#liveZygote(flavour);
        ready = await zygote.ready.promise;
      } catch (startError) {
        return await attempt.end({ status: null, startError, blenderWouldNotStart: true });
      }
      if (ready.unsafe !== null) {
        this.#unsafe.set(flavour, `Blender ${ready.blender}: ${ready.unsafe}`);
        break;
      }
      const lease = new Lease(++this.#nextLease, `${Deno.pid}-${this.#nextLease}-${crypto.randomUUID()}`, attempt);
      zygote.leases.set(lease.id, lease);
      onLease(zygote, lease);
      if (zygote.exited !== undefined) this.#onExit(zygote, zygote.exited); // It died before the lease was known.
      await this.#send(zygote, { type: "fork", id: lease.id, token: lease.token, jobDir: plan.jobDir });
      const forked = await lease.forked.promise.catch((error: Error) => error);
      if (forked instanceof ForkFailed) {
        zygote.leases.delete(lease.id);
        return await attempt.end({ status: null, startError: forked });
      }
      if (typeof forked === "string") { // Refused.
        zygote.leases.delete(lease.id);
        this.#retire(zygote);
        if (tries === 1) this.#unsafe.set(flavour, `Blender ${ready.blender}: ${forked}`);
        continue;
      }
      if (typeof forked === "number") {
        attempt.started(
          `${zygote.commandLine}  # fork-mode zygote ${zygote.id} (pid ${zygote.process.pid}), child ${forked}, job ${lease.token}`,
        );
        if (attempt.killReason !== undefined) this.#kill(zygote, lease);
      }
      const status = await lease.exited.promise;
      await Promise.all([lease.output.stdout.done, lease.output.stderr.done]);
      zygote.leases.delete(lease.id);
      if (this.#current.get(zygote.factoryStartup) !== zygote && zygote.leases.size === 0) {
        zygote.process.kill("SIGKILL"); // Retired, and its last child is done.
      }
      return await attempt.end({ status, ...(lease.collateral === undefined ? {} : { collateral: lease.collateral }) });
    }
    attempt.line(
      "stderr",
      `bgproc: fork mode is unsafe here (${this.#unsafe.get(flavour)}); this attempt runs in process mode instead`,
    );
    const args = blenderArgs(
      this.#options.runtimeEntry,
      plan.blendFile,
      ["--job-dir", plan.jobDir],
      plan.factoryStartup,
    );
    await runPrepared(attempt, this.#options.blender, args, plan.outputLimit, onFallback);
  }

  #kill(zygote: Zygote, lease: Lease): void {
    if (lease.status !== undefined || lease.watchdog !== undefined) return;
    void this.#send(zygote, { type: "kill", id: lease.id });
    // A zygote that cannot end its child (stopped, hung) is ended itself, and its children with it.
    lease.watchdog = setTimeout(() => zygote.process.kill("SIGKILL"), KILL_GRACE_MS);
  }

  async #send(zygote: Zygote, message: Record<string, unknown>): Promise<void> {
    await zygote.process.send(this.#encoder.encode(JSON.stringify(message) + "\n"));
  }

  #liveZygote(factoryStartup: boolean): Zygote {
    const current = this.#current.get(factoryStartup);
    if (current !== undefined && current.exited === undefined) return current;
    const id = String(++this.#nextZygote);
    const zygote = new Zygote(
      id,
      this.#options.blender,
      blenderArgs(this.#options.runtimeEntry, null, ["--zygote", "--worker-id", id], factoryStartup),
      factoryStartup,
    );
    const frames = this.#readFrames(zygote);
    const reading = [frames, this.#readOwnOutput(zygote)];
    const exit = zygote.process.status.then(async (status) => {
      // What the zygote wrote before it died (a child's exit, its last lines) is read first; the pipe is the
      // zygote's alone, so it ends with it (the bound is for a child caught between its fork and closing it).
      let grace: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([frames, new Promise((resolve) => grace = setTimeout(resolve, OUTPUT_GRACE_MS))]);
      clearTimeout(grace);
      this.#onExit(zygote, status);
      return zygote.process.closeStdin();
    });
    zygote.done = Promise.all([exit, ...reading]).then(() => {});
    this.#current.set(factoryStartup, zygote);
    this.#zygotes.add(zygote);
    this.#unfinished.add(zygote);
    void zygote.done.then(() => this.#unfinished.delete(zygote));
    return zygote;
  }

  /** Stop forking from `zygote`; its running children go on, and it ends once they have (or on close). */
  #retire(zygote: Zygote): void {
    if (this.#current.get(zygote.factoryStartup) === zygote) this.#current.delete(zygote.factoryStartup);
    if (zygote.leases.size === 0) zygote.process.kill("SIGKILL");
  }

  #onExit(zygote: Zygote, status: ExitStatus): void {
    zygote.exited = status;
    zygote.gone();
    this.#zygotes.delete(zygote);
    const current = this.#current.get(zygote.factoryStartup) === zygote;
    if (current) this.#current.delete(zygote.factoryStartup);
    const how = status.signal ?? `code ${status.code}`;
    // Ready, idle, not retired, not closing: it died on its own. Its parent decides on a restart (never this runner).
    if (current && !this.#closing && zygote.greeted && zygote.leases.size === 0) {
      this.#warmExit?.({ kind: "zygote", id: zygote.id, factoryStartup: zygote.factoryStartup, how });
    }
    zygote.ready.reject(new Error(`the fork-mode zygote exited (${how}) before it was ready${zygote.lastOutput()}`));
    for (const lease of zygote.leases.values()) {
      // Its children die with it (PR_SET_PDEATHSIG), and their output pipes with it.
      if (lease.status === undefined) {
        lease.attempt.line("stderr", `bgproc: the fork-mode zygote (pid ${zygote.process.pid}) died (${how})`);
        if (!this.#closing) lease.collateral = `its fork-mode zygote died (${how})`;
      }
      lease.forked.reject(new Error("the zygote died"));
      lease.output.stdout.end();
      lease.output.stderr.end();
      lease.exit({ code: 137, signal: "SIGKILL" });
    }
  }

  /** The zygote's stdout: its start-up lines, then frames (messages, and its children's output). */
  async #readFrames(zygote: Zygote): Promise<void> {
    const keep = (line: string) => zygote.keep(`stdout: ${line}`);
    try {
      for await (const frame of readFrames(zygote.process.stdout, keep)) {
        if (frame.kind === "m") {
          this.#onMessage(zygote, JSON.parse(new TextDecoder().decode(frame.payload)));
          continue;
        }
        const output = zygote.leases.get(frame.id)?.output[frame.kind.toLowerCase() === "o" ? "stdout" : "stderr"];
        if (output === undefined) continue;
        if (frame.kind === "o" || frame.kind === "e") await output.write(frame.payload);
        else output.end();
      }
    } catch (error) {
      // A stream that breaks the protocol: nothing more from this zygote can be trusted.
      zygote.keep(`bgproc: ${error instanceof Error ? error.message : String(error)}`);
      zygote.process.kill("SIGKILL");
    }
  }

  async #readOwnOutput(zygote: Zygote): Promise<void> {
    const lines = zygote.process.stderr.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
    try {
      for await (const line of lines) zygote.keep(`stderr: ${line}`);
    } catch {
      // The zygote went away.
    }
  }

  #onMessage(zygote: Zygote, message: Record<string, unknown>): void {
    if (message.type === "ready" && !zygote.greeted) {
      zygote.greet("zygote");
      zygote.ready.resolve({
        unsafe: typeof message.unsafe === "string" ? message.unsafe : null,
        blender: String(message.blender),
      });
      return;
    }
    const lease = zygote.leases.get(Number(message.id));
    if (lease === undefined) return;
    switch (message.type) {
      case "forked":
        lease.pid = Number(message.pid);
        lease.forked.resolve(lease.pid);
        break;
      case "refused":
      case "failed":
        clearTimeout(lease.watchdog); // No child to kill.
        lease.output.stdout.end();
        lease.output.stderr.end();
        if (message.type === "refused") lease.forked.resolve(String(message.why));
        else lease.forked.reject(new ForkFailed(String(message.why)));
        break;
      case "exited":
        lease.exit({ code: Number(message.code), signal: typeof message.signal === "string" ? message.signal : null });
        break;
    }
  }
}
