/**
 * The library and its service work when imported from a URL, as from JSR: the
 * Python runtime must reach Blender, and the dashboard its files, without a file path.
 */

import { deepStrictEqual, equal } from "node:assert/strict";
import { fixture } from "./_helpers.ts";
import { runImportedOverHttp } from "./_http_import.ts";

Deno.test("mod.ts imported over HTTP runs a real job", async () => {
  const run = await runImportedOverHttp((host) =>
    `import { JobManager } from "http://${host}/mod.ts";
await using manager = new JobManager();
const job = manager.addJob({ script: ${JSON.stringify(fixture("echo.py"))}, passedData: { from: "http" } });
console.log(JSON.stringify((await job.result()).pythonData));
`
  );
  equal(run.code, 0, run.stderr);
  const pythonData = JSON.parse(run.stdout);
  deepStrictEqual(pythonData.passed_data, { from: "http" });
  equal(pythonData.name, "__main__");
});

Deno.test("service imported over HTTP (as from JSR) serves its dashboard files", async () => {
  const run = await runImportedOverHttp(
    (host, dir) =>
      `import { JobManager } from "http://${host}/mod.ts";
import { createService } from "http://${host}/src/service/mod.ts";
await using manager = new JobManager();
await using service = createService({ manager, scriptsDir: ${JSON.stringify(dir)} });
for (const path of ["/", "/app.js", "/style.css"]) {
  const response = await service.fetch(new Request("http://127.0.0.1" + path));
  console.log(response.status, response.headers.get("content-type"), (await response.text()).length > 100);
}
`,
    { allowNet: true },
  );
  equal(run.code, 0, run.stderr);
  deepStrictEqual(run.stdout.trim().split("\n"), [
    "200 text/html; charset=utf-8 true",
    "200 text/javascript; charset=utf-8 true",
    "200 text/css; charset=utf-8 true",
  ]);
});
