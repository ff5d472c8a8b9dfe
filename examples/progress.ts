// deno-lint-ignore-file no-console
/** A long job with a live progress bar. Run with `deno task example:progress [seconds]`. */

import { fileURLToPath } from "node:url";
import { JobManager } from "../mod.ts";

await using manager = new JobManager();
const job = manager.addJob({
  script: fileURLToPath(new URL("./scripts/slow_count.py", import.meta.url)),
  passedData: { steps: 40, seconds: Number(Deno.args[0] ?? 4) },
});
const encoder = new TextEncoder();
const terminal = Deno.stdout.isTerminal();
for await (const progress of job.progressUpdates()) {
  const filled = Math.round(progress * 40);
  const line = `[${"#".repeat(filled)}${".".repeat(40 - filled)}] ${(progress * 100).toFixed(0).padStart(3)} %`;
  if (terminal) Deno.stdout.writeSync(encoder.encode(`\r${line}`));
  else console.log(line);
}
if (terminal) console.log();
console.log((await job.result()).pythonData);
