/** The service: routes, guards, job records and the event hub put together. */

import { InvalidJobError, type JobManager, type JsonObject } from "../../mod.ts";
import type { ManagerEvents } from "./_events.ts";
import {
  checkHost,
  checkSameOrigin,
  decodeSegment,
  errorResponse,
  hasToken,
  HttpError,
  isLoopback,
  json,
  readJson,
  TOKEN_COOKIE,
} from "./_http.ts";
import { Hub } from "./_hub.ts";
import { JobRecords, redact, STARTUP_FIELDS, startupOptions } from "./_jobs.ts";
import { declaredPassedData, listScripts, resolveScript } from "./_scripts.ts";
import { join } from "node:path";
import { makeOutputDir, outputResponse, removeIfEmpty, removeOutputs } from "./_outputs.ts";
import { staticFile } from "./_static.ts";
import { listBlends, retryChunk, startRender } from "./_renders.ts";
import { paging, RenderBook } from "./_render_book.ts";
import { AttemptTally, farmWorkers } from "./_farm.ts";
import { changePriority, requestPriority } from "./_priority.ts";
import { didYouMean } from "../_suggest.ts";

/** Options of {@linkcode createService}. */
export interface ServiceOptions {
  /** The manager that runs the jobs. The service does not close it. */
  manager: JobManager;
  /** The folder whose `.py` files (directly inside it, not symlinks) may be run, by file name. */
  scriptsDir: string;
  /**
   * A bearer token every API request must carry (`Authorization: Bearer TOKEN`; the dashboard takes it once
   * as `/?token=TOKEN` and keeps it in a same-site cookie). Without one, only loopback clients are answered.
   */
  token?: string;
  /**
   * The host names (without port) the service answers to, against DNS rebinding; `"any"` turns the check off
   * (behind a proxy that checks it).
   *
   * @default {["localhost", "127.0.0.1", "[::1]"]}
   */
  allowedHosts?: readonly string[] | "any";
  /**
   * The largest request body, in bytes.
   *
   * @default {65536}
   */
  maxBodyBytes?: number;
  /**
   * How many jobs may wait in the queue; more are refused with 429.
   *
   * @default {100}
   */
  maxQueued?: number;
  /**
   * The timeout of jobs that set none, in milliseconds; 0 means none.
   *
   * @default {600000}
   */
  defaultTimeout?: number;
  /**
   * How many finished jobs are kept; the oldest are removed past it.
   *
   * @default {100}
   */
  keepFinished?: number;
  /**
   * A folder for job outputs: each job gets a fresh folder in it named as the job is (`outputs/job-3`; removed
   * at the job's end when it stayed empty), passed to its script as
   * `passed_data["output_dir"]`; images it leaves there are listed with the job, served at
   * `/jobs/:name/outputs/:file` and shown as thumbnails. A job's folder goes when the job is removed.
   */
  outputsDir?: string;
  /**
   * A folder of `.blend` files the service may render (regular files directly inside it): `GET /blends` lists
   * them, `POST /renders { blend, frames, chunk?, name? }` renders one in chunk jobs into
   * `outputsDir/<render name>/`, and the dashboard shows a render form. Needs `outputsDir`. `GET /renders` lists the
   * renders this service started (the last 1,000; an empty list without `blendsDir`), and a dropped chunk can be
   * retried as any job.
   */
  blendsDir?: string;
}

/** A running service: its request handler, and `close()` to end its event streams. */
export interface Service extends AsyncDisposable {
  /**
   * Answer one request; mount it in `Deno.serve` (or any framework that speaks `Request`/`Response`).
   *
   * @param request The request.
   * @param info Deno.serve's connection info: the client's address decides whether a token is needed.
   * @returns The response.
   */
  fetch(request: Request, info?: { remoteAddr?: Deno.Addr }): Promise<Response>;
  /** How many event-stream clients are connected. */
  readonly eventClients: number;
  /**
   * End every event stream and stop following the manager (which stays open). Idempotent.
   *
   * @returns Settles once the service holds nothing.
   */
  close(): Promise<void>;
}

/** The longest output line the service keeps or streams, in characters. */
const MAX_LINE = 2000;

/** How deep request JSON may nest. */
const MAX_DEPTH = 32;

function check(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < min) {
    throw new RangeError(`Cannot create service as '${name}' must be >= ${min}: current value is ${value}`);
  }
  return value;
}

/**
 * Make the service for a manager.
 *
 * @param options The manager, the scripts folder, and the limits.
 * @returns The service: mount `service.fetch`, and `close()` it before closing the manager.
 * @throws {RangeError} When a limit is out of range.
 * @throws {TypeError} When `scriptsDir` or `token` is not a non-empty string.
 *
 * @example Serve on loopback
 * ```ts ignore
 * import { JobManager } from "@bgproc/blender";
 * import { createService } from "@bgproc/blender/service";
 *
 * await using manager = new JobManager();
 * await using service = createService({ manager, scriptsDir: "./scripts" });
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 8000 }, service.fetch);
 * ```
 */
export function createService(options: ServiceOptions): Service {
  return createServiceWith(options, (signal) => options.manager.events({ signal }));
}

/** {@linkcode createService} with the event source given (for `manager.events()` and tests). */
export function createServiceWith(options: ServiceOptions, events: ManagerEvents): Service {
  const { manager, scriptsDir, token } = options;
  if (typeof scriptsDir !== "string" || scriptsDir === "") {
    throw new TypeError("Cannot create service as 'scriptsDir' must be a folder path");
  }
  if (token !== undefined && (typeof token !== "string" || token.length < 8)) {
    throw new TypeError("Cannot create service as 'token' must be a string of at least 8 characters");
  }
  if (options.outputsDir !== undefined) {
    let folder = false;
    try {
      folder = Deno.statSync(options.outputsDir).isDirectory;
    } catch {
      folder = false;
    }
    if (!folder) throw new TypeError("Cannot create service as 'outputsDir' must be an existing folder");
  }
  if (options.blendsDir !== undefined) {
    if (options.outputsDir === undefined) {
      throw new TypeError("Cannot create service as 'blendsDir' needs 'outputsDir': renders write their frames there");
    }
    if (!isFolder(options.blendsDir)) {
      throw new TypeError("Cannot create service as 'blendsDir' must be an existing folder");
    }
  }
  const allowedHosts = options.allowedHosts ?? ["localhost", "127.0.0.1", "[::1]"];
  const maxBodyBytes = check("maxBodyBytes", options.maxBodyBytes, 65_536, 1);
  const maxQueued = check("maxQueued", options.maxQueued, 100, 0);
  const defaultTimeout = check("defaultTimeout", options.defaultTimeout, 600_000, 0);
  const keepFinished = check("keepFinished", options.keepFinished, 100, 0);

  const records = new JobRecords(manager);
  const book = new RenderBook(manager);
  const tally = new AttemptTally();
  const snapshot = () => ({
    jobs: records.summaries(),
    health: manager.health,
    counts: manager.counts,
    maxWorkers: manager.maxWorkers,
  });
  const hub = new Hub({
    clientBufferBytes: 1 << 20,
    history: 5000,
    historyBytes: 4 << 20,
    keepAliveMs: 15_000,
    retryMs: 2000,
    snapshot,
  });

  const prune = () => {
    const finished = manager.getJobNames().filter((name) => {
      const state = manager.getJob(name)?.state;
      return state === "COMPLETED" || state === "DROPPED";
    });
    for (const name of finished.slice(0, Math.max(0, finished.length - keepFinished))) remove(name);
  };
  const remove = (name: string) => {
    const outputDir = records.get(name)?.outputDir;
    manager.removeJob(name);
    void removeOutputs(outputDir);
    records.delete(name);
    hub.publish({ type: "removed", name });
  };

  const stop = new AbortController();
  const following = (async () => {
    for await (const raw of events(stop.signal)) {
      // Output lines go out without server paths, and cut so that the kept history stays small.
      const event = raw.type === "log" ? { ...raw, line: redact(raw.line).slice(0, MAX_LINE) } : raw;
      records.apply(event);
      book.apply(event);
      tally.apply(event);
      hub.publish(event);
      if (event.type === "state" && (event.state === "COMPLETED" || event.state === "DROPPED")) {
        // Unless the job runs again already (a retry as soon as the manager said it ended): its folder is in use.
        const state = manager.getJob(event.name)?.state;
        if (state === "COMPLETED" || state === "DROPPED") removeIfEmpty(records.get(event.name)?.outputDir);
        prune();
      }
    }
  })().catch(() => {
    // The manager's event stream failed: the API still answers from the manager; streams get no more events.
  });

  const detail = (name: string) => records.detail(name);
  const renders = options.blendsDir === undefined ? undefined : {
    manager,
    blendsDir: options.blendsDir,
    outputsDir: options.outputsDir!,
    maxQueued,
    timeout: defaultTimeout,
    book,
  };
  let unnamed = 0;
  const freeName = () => {
    let name: string;
    do name = `job-${++unnamed}`; while (manager.getJob(name) !== undefined);
    return name;
  };

  const addJob = async (body: unknown, name?: string) => {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new HttpError(400, "bad job", "The body must be a JSON object");
    }
    const { script, passedData, timeout, priority } = body as Record<string, unknown>;
    name ??= (body as Record<string, unknown>).name as string | undefined;
    const known = new Set(["script", "passedData", "name", "timeout", "priority", ...STARTUP_FIELDS]);
    const startup = startupOptions(body as Record<string, unknown>);
    for (const key of Object.keys(body)) {
      if (!known.has(key)) {
        throw new HttpError(
          400,
          "bad job",
          `Unknown field '${key}'${didYouMean(key, known)} (fields: ${[...known].join(", ")})`,
        );
      }
    }
    if (name !== undefined && typeof name !== "string") throw new HttpError(400, "bad job", "'name' must be a string");
    if (
      passedData !== undefined && (typeof passedData !== "object" || passedData === null || Array.isArray(passedData))
    ) {
      throw new HttpError(400, "bad job", "'passedData' must be a JSON object");
    }
    if (timeout !== undefined && (typeof timeout !== "number" || !Number.isFinite(timeout) || timeout < 0)) {
      throw new HttpError(400, "bad job", "'timeout' must be a number of milliseconds >= 0");
    }
    if (priority !== undefined) requestPriority(priority, "bad job", "Cannot add job");
    const path = await resolveScript(scriptsDir, script);
    if (manager.counts.queued >= maxQueued) {
      throw new HttpError(429, "queue full", `${maxQueued} jobs are already waiting; try again later`, {
        "retry-after": "5",
      });
    }
    // The service names the job (job-1, job-2, ... when the client did not), so its output folder has its name.
    name ??= freeName();
    const outputDir = options.outputsDir === undefined ? undefined : join(options.outputsDir, name);
    const job = manager.addJob({
      script: path,
      passedData: {
        ...(passedData ?? {}) as JsonObject,
        ...(outputDir === undefined ? {} : { output_dir: outputDir }),
      },
      timeout: timeout ?? defaultTimeout,
      ...startup,
      ...(priority === undefined ? {} : { priority: priority as number }),
      name,
    });
    // Made at once, in this turn: the job's Blender cannot have started yet.
    if (options.outputsDir !== undefined) makeOutputDir(options.outputsDir, name);
    const record = records.added(
      job.name,
      script as string,
      path,
      (passedData ?? {}) as JsonObject,
      timeout ?? defaultTimeout,
    );
    record.outputDir = outputDir;
    record.startup = startup;
    hub.publish({ type: "state", name: job.name, state: job.state, attempt: job.attempts });
    // Other dashboards learn a job's priority from the stream (a job is 0 until told otherwise).
    if (job.priority !== 0) hub.publish({ type: "priority", name: job.name, priority: job.priority });
    prune();
    return job.name;
  };

  /** Run a finished job again: one this service added, with its script and data; a render's chunk, its frames. */
  const retry = async (name: string): Promise<string> => {
    const job = manager.getJob(name);
    if (job === undefined) throw new HttpError(404, "no such job", `There is no job '${name}'`);
    const record = records.get(name);
    if (job.state !== "COMPLETED" && job.state !== "DROPPED") {
      throw new HttpError(409, "job not finished", `Job '${name}' is ${job.state}: cancel it first`);
    }
    if (record?.script === undefined) {
      if (renders === undefined || !retryChunk(renders, name)) {
        throw new HttpError(409, "cannot retry", `Job '${name}' was not started by this service`);
      }
      records.delete(name); // A fresh record for the chunk's new run, as a retried job gets.
      const again = manager.getJob(name)!;
      hub.publish({ type: "state", name, state: again.state, attempt: again.attempts });
      return name;
    }
    return await addJob(
      {
        script: record.script,
        passedData: record.passedData ?? {},
        timeout: record.timeout ?? defaultTimeout,
        priority: job.priority,
        ...record.startup,
      },
      name,
    );
  };

  const route = async (request: Request, path: string[]): Promise<Response> => {
    const method = request.method;
    const notAllowed = (allow: string) =>
      new HttpError(405, "method not allowed", `${method} is not allowed here`, { allow });
    const [first, second, third, ...rest] = path;
    if (first === "jobs" && second === undefined) {
      if (method === "GET") return json(records.summaries());
      if (method === "POST") {
        const name = await addJob(await readJson(request, maxBodyBytes, MAX_DEPTH));
        return json(await detail(name), 201, { location: `jobs/${encodeURIComponent(name)}` });
      }
      if (method === "DELETE") {
        const removed = manager.getJobNames().filter((name) => {
          const state = manager.getJob(name)?.state;
          return state === "COMPLETED" || state === "DROPPED";
        });
        for (const name of removed) remove(name);
        return json({ removed });
      }
      throw notAllowed("GET, POST, DELETE");
    }
    if (first === "jobs" && second !== undefined && third === "outputs" && rest.length === 1) {
      if (method !== "GET") throw notAllowed("GET");
      const name = decodeSegment(second);
      const dir = manager.getJob(name) === undefined ? undefined : records.get(name)?.outputDir;
      if (dir === undefined) throw new HttpError(404, "no such output", `Job '${name}' has no outputs`);
      return await outputResponse(dir, decodeSegment(rest[0]!));
    }
    if (first === "jobs" && second !== undefined && rest.length === 0) {
      const name = decodeSegment(second);
      const job = manager.getJob(name);
      if (job === undefined) throw new HttpError(404, "no such job", `There is no job '${name}'`);
      if (third === undefined) {
        if (method === "GET") return json(await detail(name));
        if (method === "DELETE") {
          if (job.state === "QUEUED" || job.state === "ACTIVE") await job.kill();
          if (manager.getJob(name) !== undefined) remove(name);
          return json({ removed: [name] });
        }
        throw notAllowed("GET, DELETE");
      }
      if (third === "events") {
        if (method !== "GET") throw notAllowed("GET");
        return sse(hub.connect(request.headers.get("last-event-id"), name));
      }
      if (third === "cancel") {
        if (method !== "POST") throw notAllowed("POST");
        await job.kill();
        return json(await detail(name));
      }
      if (third === "retry") {
        if (method !== "POST") throw notAllowed("POST");
        return json(await detail(await retry(name)), 201);
      }
      if (third === "priority") {
        if (method !== "POST") throw notAllowed("POST");
        const priority = await changePriority(manager, name, await readJson(request, maxBodyBytes, MAX_DEPTH));
        hub.publish({ type: "priority", name, priority });
        const summary = records.summary(name);
        if (summary === undefined) throw new HttpError(404, "no such job", "The job is gone");
        return json(summary);
      }
    }
    if (first === "events" && second === undefined) {
      if (method !== "GET") throw notAllowed("GET");
      return sse(hub.connect(request.headers.get("last-event-id")));
    }
    if (first === "scripts" && second === undefined) {
      if (method !== "GET") throw notAllowed("GET");
      return json(await listScripts(scriptsDir));
    }
    if (first === "scripts" && third === undefined) {
      if (method !== "GET") throw notAllowed("GET");
      const script = decodeSegment(second!);
      return json({ name: script, passedData: await declaredPassedData(await resolveScript(scriptsDir, script)) });
    }
    if (first === "workers" && second === undefined) {
      if (method !== "GET") throw notAllowed("GET");
      return json(await farmWorkers(manager, tally));
    }
    if (
      first === "renders" && method === "GET" && (second === undefined || (third === "frames" && rest.length === 1))
    ) {
      if (second !== undefined) return await book.frameResponse(decodeSegment(second), decodeSegment(rest[0]!));
      const { offset, limit } = paging(new URL(request.url), 20, 100);
      return json(await book.page(offset, limit));
    }
    if ((first === "blends" || first === "renders") && second === undefined) {
      if (method !== (first === "blends" ? "GET" : "POST")) throw notAllowed(first === "blends" ? "GET" : "GET, POST");
      if (renders === undefined) throw new HttpError(404, "no renders", "This service has no blends folder");
      if (first === "blends") return json(await listBlends(renders.blendsDir));
      const render = await startRender(renders, await readJson(request, maxBodyBytes, MAX_DEPTH));
      for (const name of render.jobs) {
        const job = manager.getJob(name);
        if (job !== undefined) hub.publish({ type: "state", name, state: job.state, attempt: job.attempts });
      }
      return json(render, 201);
    }
    if (first === "health" && second === undefined) {
      if (method !== "GET") throw notAllowed("GET");
      return json({
        health: manager.health,
        counts: manager.counts,
        maxWorkers: manager.maxWorkers,
        mode: manager.mode,
        eventClients: hub.clients,
      });
    }
    throw new HttpError(404, "not found", "No such resource");
  };

  const handle = async (request: Request, info?: { remoteAddr?: Deno.Addr }): Promise<Response> => {
    try {
      checkHost(request, allowedHosts);
      const url = new URL(request.url);
      const path = url.pathname.split("/").filter((part) => part !== "");
      const remote = info?.remoteAddr;
      const remoteHost = remote !== undefined && "hostname" in remote ? remote.hostname : undefined;
      if (token === undefined && remoteHost !== undefined && !isLoopback(remoteHost)) {
        throw new HttpError(403, "token required", "This service answers other machines only with a token set");
      }
      if (method(request) === "GET" && (path.length === 0 || (path.length === 1 && path[0]!.includes(".")))) {
        if (token !== undefined && path.length === 0 && url.searchParams.has("token")) {
          if (
            !hasToken(
              new Request(url, { headers: { authorization: `Bearer ${url.searchParams.get("token")}` } }),
              token,
            )
          ) {
            throw new HttpError(401, "bad token", "The token is wrong");
          }
          return new Response(null, {
            status: 303,
            headers: {
              location: "./",
              "set-cookie": `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`,
            },
          });
        }
        const file = await staticFile(path[0] ?? "index.html");
        if (file !== undefined) return file;
        throw new HttpError(404, "not found", "No such resource");
      }
      if (token !== undefined && !hasToken(request, token)) {
        throw new HttpError(401, "token required", "Send 'Authorization: Bearer TOKEN'", {
          "www-authenticate": "Bearer",
        });
      }
      checkSameOrigin(request);
      return await route(request, path);
    } catch (error) {
      if (error instanceof HttpError) return errorResponse(error);
      if (error instanceof InvalidJobError) {
        return errorResponse(new HttpError(400, "bad job", redact(error.message)));
      }
      if (error instanceof RangeError && /No job named/.test(error.message)) {
        return errorResponse(new HttpError(404, "no such job", "The job is gone"));
      }
      return errorResponse(new HttpError(500, "internal error", redact(String((error as Error)?.message ?? error))));
    }
  };

  let closing: Promise<void> | undefined;
  return {
    fetch: handle,
    get eventClients() {
      return hub.clients;
    },
    close() {
      closing ??= (async () => {
        hub.close();
        stop.abort();
        await following;
      })();
      return closing;
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
}

function method(request: Request): string {
  return request.method === "HEAD" ? "GET" : request.method;
}

function sse(body: ReadableStream<Uint8Array>): Response {
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    },
  });
}

function isFolder(path: unknown): boolean {
  try {
    return typeof path === "string" && Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}
