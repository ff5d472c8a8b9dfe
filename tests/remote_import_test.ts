/** The library works when imported from a URL, as from JSR: the Python runtime must reach Blender without a file path. */

import { deepStrictEqual, equal } from "node:assert/strict";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { fixture } from "./_helpers.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

Deno.test("mod.ts imported over HTTP runs a real job", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = normalize(join(root, decodeURIComponent(new URL(request.url).pathname)));
    if (!path.startsWith(root)) return new Response("no", { status: 403 });
    try {
      const type = extname(path) === ".ts" ? "application/typescript" : "text/plain";
      return new Response(await Deno.readFile(path), { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  const dir = await Deno.makeTempDir();
  try {
    const host = `127.0.0.1:${server.addr.port}`;
    const main = join(dir, "main.ts");
    await Deno.writeTextFile(
      main,
      `import { JobManager } from "http://${host}/mod.ts";
await using manager = new JobManager();
const job = manager.addJob({ script: ${JSON.stringify(fixture("echo.py"))}, passedData: { from: "http" } });
console.log(JSON.stringify((await job.result()).pythonData));
`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-config",
        "--no-lock",
        "--reload",
        `--allow-import=${host}`,
        "--allow-read",
        "--allow-write",
        "--allow-run",
        "--allow-env",
        main,
      ],
      cwd: dir,
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    equal(output.code, 0, stderr);
    const pythonData = JSON.parse(new TextDecoder().decode(output.stdout));
    deepStrictEqual(pythonData.passed_data, { from: "http" });
    equal(pythonData.name, "__main__");
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
