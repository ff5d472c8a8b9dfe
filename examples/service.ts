// deno-lint-ignore-file no-console
/**
 * An embeddable job service: a `Deno.serve` HTTP API over one long-lived JobManager, with Server-Sent Events and
 * a small live dashboard.
 *
 *   POST   /jobs               {"script": "add_monkey.py", "passedData": {...}, "name"?: "...", "timeout"?: ms}
 *   GET    /jobs               every job: name, state, progress, attempts
 *   GET    /jobs/:name         one job, with python_data once completed or the report once dropped
 *   DELETE /jobs/:name         cancel (kill) the job
 *   GET    /jobs/:name/events  Server-Sent Events: state, progress and log lines, until the job ends
 *   GET    /                   the dashboard
 *
 * Scripts are taken by file name from one folder (`examples/scripts` here), never from a path in the request.
 * Run with `deno task example:service` and open http://127.0.0.1:8000/.
 */

import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidJobError, type Job, type JobDroppedError, JobManager, type JsonObject } from "../mod.ts";

/** What the service needs: the manager it drives and the folder its scripts come from. */
export interface ServiceOptions {
  manager: JobManager;
  scriptsDir: string;
}

/** The service's request handler. */
export function createService(options: ServiceOptions): (request: Request) => Promise<Response> {
  const { manager, scriptsDir } = options;
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

  const describe = async (job: Job) => {
    const base = { name: job.name, state: job.state, progress: job.progress, attempts: job.attempts };
    if (job.state === "COMPLETED") return { ...base, pythonData: (await job.result()).pythonData };
    if (job.state === "DROPPED") {
      const error = await job.result().then(() => undefined, (e: JobDroppedError) => e);
      return { ...base, reason: error?.reason, report: error?.report };
    }
    return base;
  };

  const events = (job: Job) => {
    const encoder = new TextEncoder();
    let gone = false; // The client went away: keep following the job to its end, but send nothing.
    return new ReadableStream<Uint8Array>({
      cancel() {
        gone = true;
      },
      async start(controller) {
        const send = (event: string, data: unknown) => {
          if (!gone) controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
        };
        // State changes (QUEUED -> ACTIVE, attempts) have no event stream of their own: look every 250 ms.
        let shown = "";
        const sendState = async () => {
          const now = `${job.state}/${job.attempts}`;
          if (now === shown) return;
          shown = now;
          send("state", await describe(job));
        };
        const ended = job.result().then(() => true, () => true);
        const tick = () =>
          new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), 250);
            void ended.then(() => {
              clearTimeout(timer);
              resolve(true);
            });
          });
        await sendState();
        await Promise.all([
          (async () => {
            for await (const progress of job.progressUpdates()) send("progress", { progress });
          })(),
          (async () => {
            for await (const line of job.logs()) send("log", line);
          })(),
          (async () => {
            while (!await tick()) await sendState();
          })(),
        ]);
        await sendState();
        if (!gone) controller.close();
      },
    });
  };

  return async (request) => {
    const url = new URL(request.url);
    const parts = url.pathname.split("/").filter((part) => part !== "");
    try {
      if (url.pathname === "/" && request.method === "GET") {
        return new Response(DASHBOARD, { headers: { "content-type": "text/html; charset=utf-8" } });
      }
      if (parts[0] !== "jobs") return json({ error: "not found" }, 404);
      if (parts.length === 1 && request.method === "GET") {
        return json(await Promise.all(manager.getJobNames().map((name) => describe(manager.getJob(name)!))));
      }
      if (parts.length === 1 && request.method === "POST") {
        const body = await request.json().catch(() => undefined) as
          | { script?: unknown; passedData?: JsonObject; name?: string; timeout?: number }
          | undefined;
        if (typeof body?.script !== "string" || basename(body.script) !== body.script) {
          return json({ error: "'script' must be the file name of a script in the service's scripts folder" }, 400);
        }
        const job = manager.addJob({
          script: join(scriptsDir, body.script),
          ...(body.passedData === undefined ? {} : { passedData: body.passedData }),
          ...(body.name === undefined ? {} : { name: body.name }),
          ...(body.timeout === undefined ? {} : { timeout: body.timeout }),
        });
        return json(await describe(job), 201);
      }
      const job = parts[1] === undefined ? undefined : manager.getJob(decodeURIComponent(parts[1]));
      if (job === undefined) return json({ error: "no such job" }, 404);
      if (parts.length === 2 && request.method === "GET") return json(await describe(job));
      if (parts.length === 2 && request.method === "DELETE") {
        await job.kill();
        return json(await describe(job));
      }
      if (parts.length === 3 && parts[2] === "events" && request.method === "GET") {
        return new Response(events(job), {
          headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
        });
      }
      return json({ error: "not found" }, 404);
    } catch (error) {
      if (error instanceof InvalidJobError) return json({ error: error.message, field: error.field }, 400);
      throw error;
    }
  };
}

const DASHBOARD = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bgproc dashboard</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 2rem; color: #222; }
  form { display: flex; gap: .5rem; margin-bottom: 1.5rem; align-items: center; }
  input { font: inherit; padding: .3rem; } input[name=data] { width: 22rem; }
  table { border-collapse: collapse; width: 100%; } td, th { padding: .4rem .6rem; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
  .bar { width: 12rem; height: .9rem; background: #eee; border-radius: .45rem; overflow: hidden; }
  .bar > div { height: 100%; background: #3b82f6; transition: width .2s; }
  .COMPLETED .bar > div { background: #16a34a; } .DROPPED .bar > div { background: #dc2626; }
  pre { margin: 0; max-width: 28rem; white-space: pre-wrap; font-size: 12px; }
</style></head>
<body>
<h1>bgproc jobs</h1>
<form id="add">
  <label>script <input name="script" value="add_monkey.py"></label>
  <label>passed data <input name="data" value='{"size": 1, "count": 4}'></label>
  <button>Add job</button>
</form>
<table><thead><tr><th>job</th><th>state</th><th>progress</th><th>attempts</th><th>python_data</th><th></th></tr></thead>
<tbody id="jobs"></tbody></table>
<script>
const rows = new Map();
function row(job) {
  let tr = rows.get(job.name);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.job = job.name;
    tr.innerHTML = '<td class="name"></td><td class="state"></td><td><div class="bar"><div></div></div></td>' +
      '<td class="attempts"></td><td><pre class="data"></pre></td><td><button class="cancel">Cancel</button></td>';
    tr.querySelector(".name").textContent = job.name;
    tr.querySelector(".cancel").onclick = () => fetch("/jobs/" + encodeURIComponent(job.name), { method: "DELETE" });
    document.getElementById("jobs").append(tr);
    rows.set(job.name, tr);
    follow(job.name);
  }
  return tr;
}
function show(job) {
  const tr = row(job);
  tr.className = job.state;
  tr.querySelector(".state").textContent = job.state + (job.reason ? " (" + job.reason + ")" : "");
  tr.querySelector(".attempts").textContent = job.attempts;
  if (job.progress !== undefined) tr.querySelector(".bar > div").style.width = (job.progress * 100) + "%";
  if (job.pythonData) tr.querySelector(".data").textContent = JSON.stringify(job.pythonData, null, 1);
  if (job.state === "COMPLETED" || job.state === "DROPPED") tr.querySelector(".cancel").disabled = true;
}
function follow(name) {
  const source = new EventSource("/jobs/" + encodeURIComponent(name) + "/events");
  source.addEventListener("state", (event) => {
    const job = JSON.parse(event.data);
    show(job);
    if (job.state === "COMPLETED" || job.state === "DROPPED") source.close();
  });
  source.addEventListener("progress", (event) => {
    rows.get(name).querySelector(".bar > div").style.width = (JSON.parse(event.data).progress * 100) + "%";
  });
}
document.getElementById("add").onsubmit = async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("/jobs", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ script: form.get("script"), passedData: JSON.parse(form.get("data") || "{}") }) });
  const job = await response.json();
  if (response.ok) show(job); else alert(job.error);
};
fetch("/jobs").then((r) => r.json()).then((jobs) => jobs.forEach(show));
</script>
</body></html>`;

if (import.meta.main) {
  const scriptsDir = fileURLToPath(new URL("./scripts/", import.meta.url));
  await using manager = new JobManager({ maxWorkers: 2 });
  const port = Number(Deno.env.get("PORT") ?? 8000);
  const server = Deno.serve({ hostname: "127.0.0.1", port }, createService({ manager, scriptsDir }));
  console.log(`bgproc service on http://127.0.0.1:${server.addr.port}/ (scripts from ${scriptsDir})`);
  Deno.addSignalListener("SIGINT", () => server.shutdown());
  await server.finished;
}
