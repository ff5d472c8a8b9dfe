/**
 * The service names a job once, for the API and the disk (`outputs/<name>/`, no empty folders), suggests the field
 * a client meant, and `serve()` says where it listens (issue 25).
 */

import { deepStrictEqual, equal, match } from "node:assert/strict";
import { join } from "node:path";
import { JobManager } from "../mod.ts";
import { createService } from "../src/service/mod.ts";
import { fixture, waitFor } from "./_helpers.ts";

const post = (path: string, body: unknown) =>
  new Request(`http://127.0.0.1:8000${path}`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });

const DRAW = `import os
with open(os.path.join(passed_data["output_dir"], "frame_001.png"), "wb") as handle:
    handle.write(b"not really a png")
`;

Deno.test("service: an unknown field gets 'did you mean' and the list of fields", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using manager = new JobManager();
    await using service = createService({ manager, scriptsDir: dir });
    const response = await service.fetch(post("/jobs", { scrpt: "echo.py" }));
    equal(response.status, 400);
    const { detail } = await response.json();
    match(detail, /^Unknown field 'scrpt'; did you mean 'script'\? \(fields: script, passedData, name, timeout/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("service --outputs: each job's folder has the job's name (job-N when unnamed); none stays empty", async () => {
  const root = await Deno.makeTempDir();
  try {
    const scripts = join(root, "scripts");
    const outputsDir = join(root, "outputs");
    await Deno.mkdir(scripts);
    await Deno.mkdir(outputsDir);
    await Deno.writeTextFile(join(scripts, "draw.py"), DRAW);
    await Deno.copyFile(fixture("echo.py"), join(scripts, "echo.py"));
    await using manager = new JobManager();
    await using service = createService({ manager, scriptsDir: scripts, outputsDir });
    const add = async (body: unknown) => {
      const response = await service.fetch(post("/jobs", body));
      equal(response.status, 201);
      return (await response.json()).name as string;
    };
    const names = [
      await add({ script: "draw.py" }),
      await add({ script: "echo.py" }),
      await add({ script: "draw.py" }),
    ];
    deepStrictEqual(names, ["job-1", "job-2", "job-3"]);
    await Promise.all(names.map((name) => manager.getJob(name)!.result()));
    // The service removes an empty folder when it sees the job end: its event comes a moment after result().
    await waitFor(
      () => [...Deno.readDirSync(outputsDir)].length === 2,
      5000,
      "the empty folder of job-2 to be removed",
    );
    deepStrictEqual([...Deno.readDirSync(outputsDir)].map((entry) => entry.name).sort(), ["job-1", "job-3"]);
    deepStrictEqual([...Deno.readDirSync(join(outputsDir, "job-1"))].map((entry) => entry.name), ["frame_001.png"]);
    const detail = await (await service.fetch(new Request("http://127.0.0.1:8000/jobs/job-1"))).json();
    deepStrictEqual(detail.outputs, ["frame_001.png"]);
    // A retry runs in a fresh folder of the same name.
    const retried = await service.fetch(post("/jobs/job-1/retry", {}));
    equal(retried.status, 201, await retried.text());
    await manager.getJob("job-1")!.result();
    deepStrictEqual([...Deno.readDirSync(join(outputsDir, "job-1"))].map((entry) => entry.name), ["frame_001.png"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("serve(): prints its URL and how to stop it on stderr, unless quiet or given an onListen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const program = (options: string) =>
      `import { JobManager } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
import { serve } from ${JSON.stringify(new URL("../src/service/mod.ts", import.meta.url).href)};
await using manager = new JobManager();
const stop = new AbortController();
setTimeout(() => stop.abort(), 300);
await serve({ manager, scriptsDir: ${JSON.stringify(dir)}, port: 0, signal: stop.signal${options} });
`;
    const run = async (options: string) => {
      const main = join(dir, "main.ts");
      await Deno.writeTextFile(main, program(options));
      const output = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", main], stdin: "null" }).output();
      equal(output.code, 0, new TextDecoder().decode(output.stderr));
      return new TextDecoder().decode(output.stderr);
    };
    match(await run(""), /^bgproc service on http:\/\/127\.0\.0\.1:\d+\/; it stops when its signal aborts/);
    equal(await run(", quiet: true"), "");
    equal(await run(", onListen() {}"), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
