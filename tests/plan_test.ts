/** The test plan (tests/_runner/plan.ts) lists every test file once, and only files that exist. */

import { deepStrictEqual } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { listTestFiles, PLAN } from "./_runner/plan.ts";

Deno.test("the test plan names every test file under tests/, and no other", () => {
  deepStrictEqual(Object.keys(PLAN).sort(), listTestFiles(fileURLToPath(new URL("..", import.meta.url))));
});
