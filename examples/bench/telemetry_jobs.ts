// deno-lint-ignore-file no-console
/**
 * One side of the telemetry bench (`bench/telemetry.ts` starts it with or without `OTEL_DENO=true`): in mode `pool`
 * or `fork`, one warm Blender, `count` trivial jobs one after another; prints each job's round trip (ms) as JSON.
 */

import { fileURLToPath } from "node:url";
import { JobManager } from "../../mod.ts";

const [mode, count] = Deno.args;
const script = fileURLToPath(new URL("./trivial.py", import.meta.url));
await using manager = new JobManager({ mode: mode as "pool" | "fork", maxWorkers: 1, prewarm: true });
for (let i = 0; i < 5; i++) await manager.addJob({ script }).result(); // Warm: per-job time, not start-up.
const times: number[] = [];
for (let i = 0; i < Number(count); i++) {
  const start = performance.now();
  await manager.addJob({ script }).result();
  times.push(performance.now() - start);
}
console.log(JSON.stringify(times));
