/**
 * The fork runner: a warm *zygote* Blender that never runs user code forks
 * one child per attempt (`python/bgproc/_zygote.py`). The child runs the job
 * exactly as process mode does, in a process group of its own, and exits;
 * everything the job did dies with it.
 *
 * The zygote's control channel is a Unix socket, one JSON message per line
 * (`fork`/`kill` to it; `ready`/`forked`/`refused`/`exited` from it). Each
 * child's stdout and stderr are two more connections to the same socket,
 * opened by the zygote before the fork and named by the attempt's token, so
 * a job's output reaches its attempt directly and ends when the child and
 * everything it started have closed it. Exits (signals included) come from
 * the zygote, which reaps its children.
 *
 * A zygote that dies takes its running children with it (they die with
 * their parent); the next attempt starts a new one, and a zygote that cannot
 * start fails its attempt as a start failure, which the supervisor's restart
 * intensity bounds. Where forking is unsafe (the zygote says why), attempts
 * run in process mode, and each says so in its output and its `ranOn`.
 */

import { join } from "node:path";
import { lineSplitter } from "../job/lines.ts";
import { Channel } from "../../channel.ts";
import { blenderArgs, LocalAttempt } from "./_local_attempt.ts";
import { WarmBlender } from "./_warm_blender.ts";
import { type ExitStatus, OUTPUT_GRACE_MS, type ProcessGroup } from "./_process_group.ts";
import { runPrepared } from "./process.ts";
import type { AttemptEvent, AttemptHandle, AttemptPlan, Runner, WarmExit } from "./runner.ts";

/** The settings of a fork runner. */
export interface ForkRunnerOptions {
  readonly blender: string;
  readonly runtimeEntry: string;
  /** A folder for the socket. */
  readonly dir: string;
  /** The manager's default startup (`--factory-startup` or not): the zygote `prewarm` starts. */
  readonly factoryStartup: boolean;
}

/** One attempt on the zygote. */
class Lease {
  readonly token: string;
  readonly attempt: LocalAttempt;
  readonly forked = Promise.withResolvers<number | string>();
  pid: number | undefined;
  status: ExitStatus | undefined;
  readonly streams: Record<"stdout" | "stderr", Promise<void> | undefined> = { stdout: undefined, stderr: undefined };
  readonly exited = Promise.withResolvers<ExitStatus>();
  /** The output connections, closed when the grace after exit runs out. */
  readonly connections: Deno.UnixConn[] = [];

  constructor(token: string, attempt: LocalAttempt) {
    this.token = token;
    this.attempt = attempt;
    this.forked.promise.catch(() => {});
  }
}

/** One warm Blender that forks. */
class Zygote extends WarmBlender<{ connection: Deno.UnixConn; unsafe: string | null; blender: string }> {
  readonly leases = new Map<string, Lease>();
  exited: ExitStatus | undefined;
  /** The last lines the zygote itself printed, for the error when it will not start. */
  readonly tail: string[] = [];
}

/**
 * Runs each attempt in a child forked from a warm zygote. There is a zygote per startup flavour (with
 * `--factory-startup` and without), each started on the first attempt that asks for it: a child inherits the
 * preferences, add-ons and `sys.path` its zygote started with.
 */
export class ForkRunner implements Runner {
  readonly #options: ForkRunnerOptions;
  readonly #socketPath: string;
  readonly #listener: Deno.UnixListener;
  readonly #greetings = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  readonly #encoder = new TextEncoder();
  /** The zygote each startup flavour forks from now (keyed by `factoryStartup`). */
  readonly #current = new Map<boolean, Zygote>();
  readonly #zygotes = new Set<Zygote>();
  /** Zygotes whose process or output is not done yet (an exited zygote's pipes may still be closing). */
  readonly #unfinished = new Set<Zygote>();
  #nextZygote = 0;
  #nextToken = 0;
  /** Why forking is unsafe on this Blender, per startup flavour, once a zygote of it said so. */
  readonly #unsafe = new Map<boolean, string>();
  #warmExit: ((exit: WarmExit) => void) | undefined;
  #closing = false;

  constructor(options: ForkRunnerOptions) {
    this.#options = options;
    Deno.mkdirSync(options.dir, { recursive: true });
    this.#socketPath = join(options.dir, "zygote.sock");
    const listener = Deno.listen({ transport: "unix", path: this.#socketPath });
    this.#listener = listener;
    this.#accepting = (async () => {
      for await (const connection of listener) {
        const greeting: Promise<void> = this.#greet(connection).finally(() => this.#greetings.delete(greeting));
        this.#greetings.add(greeting);
      }
    })().catch(() => {});
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
    for (const zygote of this.#zygotes) {
      for (const lease of zygote.leases.values()) if (lease.pid !== undefined) killGroup(lease.pid);
      zygote.process.kill("SIGKILL");
    }
    await Promise.all([...this.#unfinished].map((zygote) => zygote.done));
    this.#listener.close();
    await this.#accepting;
    await Promise.all(this.#greetings);
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
      const zygote = this.#liveZygote(flavour);
      let ready;
      try {
        ready = await zygote.ready.promise;
      } catch (startError) {
        return await attempt.end({ status: null, startError, blenderWouldNotStart: true });
      }
      if (ready.unsafe !== null) {
        this.#unsafe.set(flavour, `Blender ${ready.blender}: ${ready.unsafe}`);
        break;
      }
      const token = `${Deno.pid}-${++this.#nextToken}-${crypto.randomUUID()}`;
      const lease = new Lease(token, attempt);
      zygote.leases.set(token, lease);
      onLease(zygote, lease);
      if (zygote.exited !== undefined) this.#onExit(zygote, zygote.exited); // It died before the lease was known.
      await this.#send(zygote, { type: "fork", token, jobDir: plan.jobDir });
      const forked = await lease.forked.promise.catch((error: Error) => error);
      if (typeof forked === "string") { // Refused.
        zygote.leases.delete(token);
        this.#retire(zygote);
        if (tries === 1) this.#unsafe.set(flavour, `Blender ${ready.blender}: ${forked}`);
        continue;
      }
      if (typeof forked === "number") {
        attempt.started(
          `${zygote.commandLine}  # fork-mode zygote ${zygote.id} (pid ${zygote.process.pid}), child ${forked}, job ${token}`,
        );
        if (attempt.killReason !== undefined) this.#kill(zygote, lease);
      }
      const status = await lease.exited.promise;
      await this.#outputDone(lease);
      zygote.leases.delete(token);
      return await attempt.end({ status });
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

  /** Wait for both output connections to end, at most OUTPUT_GRACE_MS once the child is reaped. */
  async #outputDone(lease: Lease): Promise<void> {
    let grace: ReturnType<typeof setTimeout> | undefined;
    let over = false;
    const timeUp = new Promise<void>((resolve) => grace = setTimeout(resolve, OUTPUT_GRACE_MS));
    const streamsDone = (async () => {
      // The zygote connected both before the fork: they are accepted soon even if the child wrote nothing. A zygote
      // that died first never connects them: the wait ends with the grace.
      while ((lease.streams.stdout === undefined || lease.streams.stderr === undefined) && !over) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await Promise.all([lease.streams.stdout, lease.streams.stderr]);
    })();
    await Promise.race([streamsDone, timeUp]);
    over = true;
    clearTimeout(grace);
    for (const connection of lease.connections) closeQuietly(connection);
    await streamsDone.catch(() => {});
  }

  #kill(zygote: Zygote, lease: Lease): void {
    if (lease.status !== undefined) return;
    if (zygote.exited !== undefined) {
      if (lease.pid !== undefined) killGroup(lease.pid);
      return;
    }
    void this.#send(zygote, { type: "kill", token: lease.token });
  }

  async #send(zygote: Zygote, message: Record<string, unknown>): Promise<void> {
    await zygote.connection?.write(this.#encoder.encode(JSON.stringify(message) + "\n")).catch(() => {});
  }

  #liveZygote(factoryStartup: boolean): Zygote {
    const current = this.#current.get(factoryStartup);
    if (current !== undefined && current.exited === undefined) return current;
    const id = String(++this.#nextZygote);
    const zygote = new Zygote(
      id,
      this.#options.blender,
      blenderArgs(
        this.#options.runtimeEntry,
        null,
        ["--zygote-socket", this.#socketPath, "--worker-id", id],
        factoryStartup,
      ),
      factoryStartup,
    );
    const reading = (["stdout", "stderr"] as const).map((stream) => this.#readOwnOutput(zygote, stream));
    const exit = zygote.process.status.then((status) => {
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
    this.#zygotes.delete(zygote);
    const current = this.#current.get(zygote.factoryStartup) === zygote;
    if (current) this.#current.delete(zygote.factoryStartup);
    const how = status.signal ?? `code ${status.code}`;
    // Ready, idle, not retired, not closing: it died on its own. Its parent decides on a restart (never this runner).
    if (current && !this.#closing && zygote.connection !== undefined && zygote.leases.size === 0) {
      this.#warmExit?.({ kind: "zygote", id: zygote.id, factoryStartup: zygote.factoryStartup, how });
    }
    const tail = zygote.tail.length === 0 ? "" : `; its last output:\n${zygote.tail.join("\n")}`;
    zygote.ready.reject(new Error(`the fork-mode zygote exited (${how}) before it was ready${tail}`));
    try {
      zygote.connection?.close();
    } catch {
      // Closed already.
    }
    for (const lease of zygote.leases.values()) {
      // Its children die with it (PR_SET_PDEATHSIG); end their groups too, and their attempts.
      if (lease.pid !== undefined) killGroup(lease.pid);
      lease.attempt.line("stderr", `bgproc: the fork-mode zygote (pid ${zygote.process.pid}) died (${how})`);
      lease.forked.reject(new Error("the zygote died"));
      lease.status ??= { code: 137, signal: "SIGKILL" };
      lease.exited.resolve(lease.status);
    }
  }

  async #readOwnOutput(zygote: Zygote, stream: "stdout" | "stderr"): Promise<void> {
    const lines = zygote.process[stream].pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
    try {
      for await (const line of lines) {
        zygote.tail.push(`${stream}: ${line}`);
        if (zygote.tail.length > 20) zygote.tail.shift();
      }
    } catch {
      // The zygote went away.
    }
  }

  /** A new connection: the zygote's control channel (`ready`), or one output stream of one child (`output`). */
  async #greet(connection: Deno.UnixConn): Promise<void> {
    const reader = connection.readable.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter()).getReader();
    try {
      const first = await reader.read();
      const hello = first.done ? undefined : JSON.parse(first.value);
      if (hello?.type === "output") return await this.#readChildOutput(connection, reader, hello);
      const zygote = hello?.type === "ready"
        ? [...this.#zygotes].find((z) => z.id === String(hello.zygote))
        : undefined;
      // Once per zygote: a second `ready` for it comes from one of its children (a job can find the socket and the
      // zygote's id in /proc), and taking it would send the next job's fork request to that job.
      if (zygote === undefined || zygote.exited !== undefined || zygote.connection !== undefined) {
        return connection.close();
      }
      zygote.connection = connection;
      zygote.ready.resolve({
        connection,
        unsafe: typeof hello.unsafe === "string" ? hello.unsafe : null,
        blender: String(hello.blender),
      });
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        this.#onZygoteMessage(zygote, JSON.parse(value));
      }
    } catch {
      // The zygote went away; its exit ends its attempts.
    } finally {
      reader.releaseLock();
    }
  }

  #onZygoteMessage(zygote: Zygote, message: Record<string, unknown>): void {
    const lease = zygote.leases.get(String(message.token));
    if (lease === undefined) return;
    switch (message.type) {
      case "forked":
        lease.pid = Number(message.pid);
        lease.forked.resolve(lease.pid);
        break;
      case "refused":
        lease.forked.resolve(String(message.why));
        break;
      case "exited":
        lease.status = {
          code: Number(message.code),
          signal: typeof message.signal === "string" ? message.signal : null,
        };
        lease.exited.resolve(lease.status);
        if (this.#current.get(zygote.factoryStartup) !== zygote && zygote.leases.size === 1) {
          zygote.process.kill("SIGKILL"); // Retired.
        }
        break;
    }
  }

  /** Pass one child's stream to its attempt, line by line, until the child and its descendants close it. */
  async #readChildOutput(
    connection: Deno.UnixConn,
    reader: ReadableStreamDefaultReader<string>,
    hello: { token?: unknown; stream?: unknown },
  ): Promise<void> {
    const stream = hello.stream === "stderr" ? "stderr" : "stdout";
    const lease = [...this.#zygotes].map((zygote) => zygote.leases.get(String(hello.token))).find((l) =>
      l !== undefined
    );
    if (lease === undefined || lease.streams[stream] !== undefined) return connection.close();
    lease.connections.push(connection);
    const reading = (async () => {
      try {
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          lease.attempt.line(stream, value);
        }
      } catch {
        // Closed after the grace, or the child went away.
      } finally {
        closeQuietly(connection);
      }
    })();
    lease.streams[stream] = reading;
    await reading;
  }
}

function killGroup(pid: number): void {
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch {
    // Gone already.
  }
}

function closeQuietly(connection: Deno.UnixConn): void {
  try {
    connection.close();
  } catch {
    // Closed already.
  }
}
