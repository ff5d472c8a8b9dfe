/**
 * The service (HTTP API and event stream) over a NATS cluster: a
 * `JobManager({ nats })` behind `createService`, a real worker and Blender.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { JobManager } from "../../mod.ts";
import { createService } from "../../src/service/mod.ts";
import { fixture } from "../_helpers.ts";
import { startNatsServer, startWorker } from "./_server.ts";

/** Server-sent events' `event:` and `data:` until `until` holds. */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  until: (events: { event?: string; data?: string }[]) => boolean,
) {
  const events: { event?: string; data?: string }[] = [];
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (!until(events)) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (block.startsWith(":")) continue;
        const event: Record<string, string> = {};
        for (const line of block.split("\n")) {
          event[line.slice(0, line.indexOf(":"))] = line.slice(line.indexOf(":") + 2);
        }
        events.push(event);
      }
    }
  } finally {
    await reader.cancel();
  }
  return events;
}

Deno.test("service over NATS: a job submitted over HTTP runs on a worker, and the event stream shows it end", async () => {
  await using server = await startNatsServer();
  await using _worker = await startWorker(server.url, ["--namespace", "served", "--workers", "1"]);
  const scripts = await Deno.makeTempDir({ prefix: "bgproc-nats-service-" });
  await Deno.copyFile(fixture("echo.py"), join(scripts, "echo.py"));
  try {
    await using manager = new JobManager({ nats: { servers: server.url, namespace: "served" } });
    await using service = createService({ manager, scriptsDir: scripts });
    const base = "http://127.0.0.1:8000";
    const controller = new AbortController();
    const stream = await service.fetch(new Request(`${base}/events`, { signal: controller.signal }));
    const response = await service.fetch(
      new Request(`${base}/jobs`, {
        method: "POST",
        body: JSON.stringify({ script: "echo.py", name: "served-echo" }),
        headers: { "content-type": "application/json" },
      }),
    );
    assert.equal(response.status, 201, await response.clone().text());
    const done = (events: { event?: string; data?: string }[]) =>
      events.some((e) => e.event === "state" && e.data!.includes('"served-echo"') && e.data!.includes('"COMPLETED"'));
    const events = await readEvents(stream.body!, done);
    controller.abort();
    assert.ok(done(events), JSON.stringify(events));
    assert.ok(events.some((e) => e.event === "state" && e.data!.includes('"ACTIVE"')));
    const health = await (await service.fetch(new Request(`${base}/health`))).json();
    assert.equal(health.health.status, "ok", JSON.stringify(health));
    assert.equal(health.counts.completed, 1);
    const job = await (await service.fetch(new Request(`${base}/jobs/served-echo`))).json();
    assert.equal(job.state, "COMPLETED");
  } finally {
    await Deno.remove(scripts, { recursive: true });
  }
});
