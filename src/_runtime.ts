/** Putting the Python runtime where Blender can run it: the manager's work root. */

import { join } from "node:path";
import { PYTHON_SOURCES } from "./_python_sources.ts";

/** Write the `bgproc` package under `root` and return the path of its entry script. */
export function materializeRuntime(root: string): string {
  const dir = join(root, "runtime", "bgproc");
  Deno.mkdirSync(dir, { recursive: true });
  Deno.mkdirSync(join(root, "pool"), { recursive: true });
  for (const [name, source] of Object.entries(PYTHON_SOURCES)) {
    Deno.writeTextFileSync(join(dir, name), source);
  }
  return join(dir, "__main__.py");
}
