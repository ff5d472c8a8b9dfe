/**
 * The NATS backend of `JobManager`: `new JobManager({ nats })` makes one. It
 * imports the host side (`host.ts`, and so the npm NATS client) lazily, only
 * here, so `mod.ts` stays importable from a URL; jobs added before the
 * connection is up are submitted once it is.
 */

import type { CheckedJob } from "../api/checked_job.ts";
import type { JobManagerNatsOptions, ResolvedOptions } from "../api/options.ts";
import { makeBackendRoot } from "../_backend_root.ts";
import type { WorkRoot } from "../_work_root.ts";
import type { Backend, BackendEvent, BackendSettings } from "../backend.ts";
import { NatsBackendUnavailableError } from "../errors.ts";
import type { ManagerHealth } from "../types.ts";
import { checkNamespace } from "./_protocol.ts";
import { checkNatsOptions } from "./_check_options.ts";
import type { NatsHost } from "./host.ts";

/** The NATS cluster behind a `JobManager`, reached once its client is loaded and connected. */
export class NatsBackend implements Backend {
  readonly workRoot: string;
  readonly jobScripts: string;
  readonly sharesFiles = false;
  readonly sharedNames = true;
  readonly #root: WorkRoot;
  readonly #ready: Promise<NatsHost>;
  #host: NatsHost | undefined;
  #failure: Error | undefined;
  #maxAttempts: number;
  #wantLogs = false;
  /** Jobs added before the connection was up, submitted once it is. */
  readonly #waiting: CheckedJob[] = [];
  #closing: Promise<void> | undefined;
  readonly #servers: string;
  readonly #since = new Date();

  constructor(nats: JobManagerNatsOptions, options: ResolvedOptions, publish: (event: BackendEvent) => void) {
    if (
      typeof nats !== "object" || nats === null || (typeof nats.servers !== "string" && !Array.isArray(nats.servers))
    ) {
      throw new TypeError("Cannot make JobManager as 'nats' must be an object with 'servers'");
    }
    const ackWaitMs = nats.ackWaitMs ?? 30_000;
    if (!Number.isInteger(ackWaitMs) || ackWaitMs < 1) {
      throw new RangeError(
        `Cannot make JobManager as 'nats.ackWaitMs' must be an integer >= 1: current value is ${ackWaitMs}`,
      );
    }
    const namespace = checkNamespace("Cannot make JobManager", nats.namespace ?? "default");
    checkNatsOptions("Cannot make JobManager", nats, "nats.");
    this.#servers = Array.isArray(nats.servers) ? nats.servers.join(", ") : nats.servers;
    this.#maxAttempts = options.maxAttempts;
    const made = makeBackendRoot(options.workDir);
    this.#root = made.root;
    this.workRoot = made.root.path;
    this.jobScripts = made.jobScripts;
    const { retry } = options;
    const settings = {
      maxAttempts: this.#maxAttempts,
      retry: { on: [...retry.on], delayMs: retry.initialDelayMs, factor: retry.factor, maxDelayMs: retry.maxDelayMs },
      ackWaitMs,
      workRoot: this.workRoot,
      resultLimit: options.resultLimit,
      blender: options.blender,
    };
    this.#ready = (async () => {
      let module: typeof import("./host.ts");
      try {
        // A specifier Deno cannot read ahead: a literal one is fetched (with the npm NATS client) at start-up,
        // by every user of the library, NATS or not.
        const specifier = new URL("./host.ts", import.meta.url).href;
        module = await import(specifier);
      } catch (error) {
        throw new NatsBackendUnavailableError(error);
      }
      const { ackWaitMs: _, namespace: __, signing, ...connection } = nats;
      return await module.NatsHost.connect(connection, namespace, { ...settings, signing }, publish);
    })();
    this.#ready.then((host) => {
      this.#host = host;
      host.configure({ maxAttempts: this.#maxAttempts });
      if (this.#wantLogs) host.wantLogs();
      for (const job of this.#waiting.splice(0)) host.submit(job);
    }, (error) => {
      this.#failure = error instanceof Error ? error : new Error(String(error));
      for (const job of this.#waiting.splice(0)) {
        publish({ type: "rejected", name: job.name, error: this.#failure });
      }
    });
  }

  /** Settles once connected, with every job of the namespace known. */
  async ready(): Promise<void> {
    await this.#ready;
  }

  /** The host, once connected (for what only a cluster has: workers, dead letters, files). */
  host(): Promise<NatsHost> {
    return this.#ready;
  }

  /** The host, if connected. */
  get connectedHost(): NatsHost | undefined {
    return this.#host;
  }

  get health(): ManagerHealth {
    if (this.#host !== undefined) return this.#host.health;
    const now = new Date();
    // Until connected no job can run: say so, and what went wrong if the connection failed.
    const reason = this.#failure?.message ?? `connecting to the NATS server ${this.#servers}`;
    return {
      status: "failing",
      reason,
      failures: this.#failure === undefined ? 0 : 1,
      since: this.#since,
      retryAt: now,
    };
  }

  get availableWorkers(): number {
    return this.#host?.availableWorkers ?? 0;
  }

  submit(job: CheckedJob): void {
    if (this.#host !== undefined) this.#host.submit(job);
    else this.#waiting.push(job);
  }

  async reprioritize(name: string, priority: number): Promise<boolean> {
    const waiting = this.#host === undefined ? this.#waiting.findIndex((job) => job.name === name) : -1;
    if (waiting >= 0) { // Not submitted yet: it will be, at this priority.
      this.#waiting[waiting] = { ...this.#waiting[waiting]!, priority };
      return true;
    }
    const host = await this.#ready; // Not connected: why not.
    return await host.reprioritize(name, priority);
  }

  async kill(name: string): Promise<void> {
    const host = await this.#ready.catch(() => null);
    await host?.kill(name);
  }

  async killAll(): Promise<void> {
    const host = await this.#ready.catch(() => null);
    await host?.killAll();
  }

  forget(name: string): Promise<void> {
    // Decided now (a job of the same name may be added right after); before the connection, no job of this
    // manager is in the cluster yet.
    return this.#host?.forget(name) ?? Promise.resolve();
  }

  wantLogs(): void {
    this.#wantLogs = true;
    this.#host?.wantLogs();
  }

  configure(settings: BackendSettings): void {
    if (settings.maxWorkers !== undefined) {
      throw new Error("Cannot set maxWorkers with nats: the workers have their slots");
    }
    if (settings.maxAttempts !== undefined) this.#maxAttempts = settings.maxAttempts;
    this.#host?.configure(settings);
  }

  /** Submit what was added, then stop following the cluster (its jobs go on there) and remove the work root. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const host = await this.#ready.catch(() => null);
      await host?.close();
      await Deno.remove(this.workRoot, { recursive: true }).catch(() => {});
      this.#root.release();
    })();
    return this.#closing;
  }
}
