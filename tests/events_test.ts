/** manager.events(): every job's state changes, progress and log lines, and the manager's health. */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { JobManager, type ManagerEvent } from "../mod.ts";
import { fixture } from "./_helpers.ts";

for (const mode of ["process", "pool"] as const) {
  Deno.test(`${mode}: events() streams QUEUED, ACTIVE per attempt, progress, logs, then the end`, async () => {
    await using manager = new JobManager({ mode, maxAttempts: 2, retry: { delayMs: 0 } });
    const controller = new AbortController();
    const seen: ManagerEvent[] = [];
    const reading = (async () => {
      for await (const event of manager.events({ signal: controller.signal })) {
        seen.push(event);
        if (event.type === "state" && event.name === "flaky" && event.state === "DROPPED") controller.abort();
        if (event.type === "state" && event.name === "flaky" && event.state === "COMPLETED") controller.abort();
      }
    })();
    const marker = await Deno.makeTempFile();
    await Deno.remove(marker);
    manager.addJob({ name: "flaky", script: fixture("flaky.py"), passedData: { counter_file: marker, fail_times: 1 } });
    await reading;
    const states = seen.filter((event) => event.type === "state").map((event) =>
      event.type === "state" ? `${event.state}#${event.attempt}` : ""
    );
    deepStrictEqual(states, ["QUEUED#0", "ACTIVE#1", "ACTIVE#2", "COMPLETED#2"]);
    if (mode === "process") { // A pool worker prints nothing of its own for a job that prints nothing.
      ok(seen.some((event) => event.type === "log" && event.attempt === 1), "no log line of the first attempt");
    }
    await Deno.remove(marker).catch(() => {});
  });
}

Deno.test("events() ends when the manager closes, and on return()", async () => {
  const manager = new JobManager();
  const first = manager.events();
  const second = manager.events();
  await second.return?.();
  const job = manager.addJob({ script: fixture("progress.py"), passedData: { steps: 2, pause: 0 } });
  await job.result();
  await manager.close();
  const types: string[] = [];
  for await (const event of first) types.push(event.type === "state" ? event.state : event.type);
  equal(types[0], "QUEUED");
  equal(types.at(-1), "COMPLETED");
  ok(types.includes("progress"));
  equal((await second.next()).done, true);
});
