/**
 * A user who never uses NATS never downloads its client: the library's NATS backend and the CLI's worker are
 * imported by specifiers Deno does not read ahead (issue 25: a first run fetched `@nats-io/*`).
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";

Deno.test("importing mod.ts and running a manager fetches no npm package (the NATS client stays unfetched)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The project's import map, as a user's own project that added the package would resolve it; no lockfile and
    // an empty DENO_DIR, as on a first run.
    const { imports } = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
    await Deno.writeTextFile(join(dir, "deno.json"), JSON.stringify({ imports }));
    await Deno.writeTextFile(
      join(dir, "main.ts"),
      `import { JobManager } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
await using manager = new JobManager();
console.log(manager.maxWorkers > 0);
`,
    );
    const cache = join(dir, "deno-dir");
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--config", join(dir, "deno.json"), "--no-lock", "-A", join(dir, "main.ts")],
      env: { DENO_DIR: cache, NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    equal(output.code, 0, stderr);
    equal(new TextDecoder().decode(output.stdout), "true\n");
    ok(!stderr.includes("Download"), `a first run downloaded:\n${stderr}`);
    deepStrictEqual(existsSync(join(cache, "npm")) ? [...Deno.readDirSync(join(cache, "npm"))] : [], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
