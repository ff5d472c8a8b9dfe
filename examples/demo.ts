// deno-lint-ignore-file no-console
/**
 * The demo: runs a real Blender job that builds a row of subdivided monkeys,
 * shows its live progress, then prints its python_data.
 *
 * Run with `deno task demo`.
 */

import { fileURLToPath } from "node:url";
import { BlenderNotFoundError, JobDroppedError, JobManager } from "../mod.ts";

const script = fileURLToPath(new URL("./scripts/add_monkey.py", import.meta.url));

/** The manager; a missing Blender is one line, not a stack. */
function start(): JobManager {
  try {
    return new JobManager({ maxWorkers: 2 });
  } catch (error) {
    if (!(error instanceof BlenderNotFoundError)) throw error;
    console.error(`demo: ${error.message}`);
    Deno.exit(3);
  }
}

await using manager = start();
console.log(`Blender: ${manager.blenderPath}`);
const job = manager.addJob({
  name: "monkeys",
  script,
  passedData: { size: 1.5, count: 8, label: `it's "quoted" — ünïcode` },
  timeout: 120_000,
});

const width = 30;
for await (const progress of job.progressUpdates()) {
  const filled = Math.round(progress * width);
  console.log(`[${"#".repeat(filled)}${".".repeat(width - filled)}] ${(progress * 100).toFixed(0).padStart(3)} %`);
}

try {
  const result = await job.result();
  console.log(`Job '${result.name}' completed in ${result.durationMs} ms (${result.attempts} attempt):`);
  console.log(JSON.stringify(result.pythonData, null, 2));
} catch (error) {
  if (!(error instanceof JobDroppedError)) throw error;
  console.error(error.report);
  Deno.exitCode = 1;
}
