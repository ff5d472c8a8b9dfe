// deno-lint-ignore-file no-console
/** The smallest use: one job, its python_data. Run with `deno task example:hello [name]`. */

import { fileURLToPath } from "node:url";
import { JobManager } from "../mod.ts";

await using manager = new JobManager();
const job = manager.addJob({
  script: fileURLToPath(new URL("./scripts/hello.py", import.meta.url)),
  passedData: { who: Deno.args[0] ?? "Deno" },
});
console.log((await job.result()).pythonData);
