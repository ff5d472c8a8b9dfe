/** The embedded copy of python/bgproc is current. */

import { equal } from "node:assert/strict";
import { generatePythonSources } from "../src/_python_sources_gen.ts";

Deno.test("src/_python_sources.ts matches python/bgproc (run `deno task gen` after editing Python)", async () => {
  const current = await Deno.readTextFile(new URL("../src/_python_sources.ts", import.meta.url));
  equal(current, await generatePythonSources());
});
