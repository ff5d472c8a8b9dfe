// deno-lint-ignore-file no-console
/**
 * The job service, embedded in a program of your own: `@bgproc/blender/service` over one long-lived manager,
 * serving the scripts in `examples/scripts` on http://127.0.0.1:8000/ until Ctrl-C.
 * `deno task serve` (the CLI's `bgproc serve`) does the same with flags.
 */

import { fileURLToPath } from "node:url";
import { JobManager } from "../mod.ts";
import { serve } from "../src/service/mod.ts";

const scriptsDir = fileURLToPath(new URL("./scripts/", import.meta.url));
await using manager = new JobManager({ maxWorkers: 2 });
const stop = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => stop.abort());
await serve({
  manager,
  scriptsDir,
  port: Number(Deno.env.get("PORT") ?? 8000),
  signal: stop.signal,
  onListen: ({ url }) => console.log(`bgproc service on ${url}`),
});
