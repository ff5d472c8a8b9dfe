/** The example service's HTTP API, without a browser: add, list, read, cancel, events, and bad requests. */

import { deepStrictEqual, equal, match } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { JobManager } from "../mod.ts";
import { createService } from "../examples/service.ts";

Deno.test("service: POST, GET, DELETE and Server-Sent Events of a job; bad scripts are 400", async () => {
  const scriptsDir = fileURLToPath(new URL("../examples/scripts/", import.meta.url));
  await using manager = new JobManager();
  const handle = createService({ manager, scriptsDir });
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await handle(
      new Request(`http://service${path}`, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
      }),
    );
    return {
      status: response.status,
      body: response.headers.get("content-type")?.includes("json") ? await response.json() : await response.text(),
    };
  };

  equal((await call("POST", "/jobs", { script: "../../etc/passwd" })).status, 400);
  equal((await call("POST", "/jobs", { script: "no_such.py" })).status, 400);
  equal((await call("GET", "/jobs/nope")).status, 404);
  const added = await call("POST", "/jobs", { script: "hello.py", passedData: { who: "HTTP" }, name: "hi" });
  equal(added.status, 201);
  equal(added.body.name, "hi");
  const events = await handle(new Request("http://service/jobs/hi/events"));
  const text = await events.text();
  match(text, /event: state\ndata: .*"COMPLETED"/);
  match(text, /"greeting":"Hello, HTTP!"/);
  const read = await call("GET", "/jobs/hi");
  deepStrictEqual(read.body.pythonData.greeting, "Hello, HTTP!");
  deepStrictEqual((await call("GET", "/jobs")).body.map((job: { name: string }) => job.name), ["hi"]);

  await call("POST", "/jobs", { script: "slow_count.py", passedData: { seconds: 60 }, name: "slow" });
  const cancelled = await call("DELETE", "/jobs/slow");
  equal(cancelled.body.state, "DROPPED");
  equal(cancelled.body.reason, "killed");
});
