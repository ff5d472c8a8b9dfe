/**
 * An HTTP service over one long-lived {@linkcode JobManager}: a JSON API to add, watch, cancel, retry and
 * remove jobs, one Server-Sent Events stream of every job's state, progress and output, and a live dashboard.
 * Safe by default: it answers only to allowed `Host` names, refuses cross-site writes, needs a bearer token
 * from anything but loopback, limits bodies, queue length and kept jobs, and runs only the `.py` files
 * directly inside its scripts folder.
 *
 * ```ts ignore
 * import { JobManager } from "jsr:@bgproc/blender";
 * import { createService } from "jsr:@bgproc/blender/service";
 *
 * await using manager = new JobManager({ maxWorkers: 2 });
 * await using service = createService({ manager, scriptsDir: "./scripts" });
 * await Deno.serve({ hostname: "127.0.0.1", port: 8000 }, service.fetch).finished;
 * ```
 *
 * The API (all bodies JSON; errors are `{ "error": "...", "detail": "..." }`):
 *
 * | method and path | does |
 * | --- | --- |
 * | `GET /` | the dashboard |
 * | `GET /events` | Server-Sent Events: `snapshot`, then `state`, `progress`, `log`, `health`, `removed`, `priority` |
 * | `GET /jobs` | every job's summary (with its `priority`) |
 * | `POST /jobs` | add a job: `{ "script": "x.py", "passedData"?: {}, "name"?: "a", "timeout"?: ms, "priority"?: 0 }` |
 * | `DELETE /jobs` | remove every finished job |
 * | `GET /jobs/:name` | one job: summary, timings, output tail, `pythonData`, data blocks, or the report |
 * | `GET /jobs/:name/events` | the event stream, filtered to one job |
 * | `GET /jobs/:name/outputs/:file` | an image the job left in its output folder (with `outputsDir`) |
 * | `POST /jobs/:name/cancel` | kill the job |
 * | `POST /jobs/:name/retry` | run a finished job again with the same script and data (a render's chunk: its frames) |
 * | `POST /jobs/:name/priority` | `{ "priority": 5 }`: change a queued job's priority (higher first; 409 once it runs) |
 * | `DELETE /jobs/:name` | remove the job (killing it first if it runs) |
 * | `GET /scripts` | the scripts that can be run |
 * | `GET /health` | the manager's health, counts and workers |
 * | `GET /workers` | over NATS each live worker (slots, GPUs, jobs, heartbeat, `stale`, counts); else this machine |
 * | `POST /renders` | with `blendsDir`: render `{ "blend": "a.blend", "frames": "1-48", "chunk"?: 10 }` in chunk jobs |
 * | `GET /renders?offset&limit` | the renders, newest first: frames done, state, each frame's state, the last frame |
 * | `GET /renders/:name/frames/:n` | a frame's image, from the render's folder |
 *
 * @module
 */

export { createService, type Service, type ServiceOptions } from "./_service.ts";
export { serve, type ServeOptions } from "./_serve.ts";
