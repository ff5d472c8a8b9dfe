/** The runtime's Python sources are all embedded, and both languages name the job directory's files alike. */

import { deepStrictEqual } from "node:assert/strict";
import { PYTHON_SOURCES } from "../src/_runtime.ts";
import { JOB_FILES } from "../src/local/job/dir.ts";

const pythonDir = new URL("../python/bgproc/", import.meta.url);

Deno.test("every python/bgproc/*.py and jobs/*.py is embedded by src/_runtime.ts, as it is on disk", async () => {
  const names: string[] = [];
  for (const folder of ["", "jobs/"]) {
    for await (const entry of Deno.readDir(new URL(folder, pythonDir))) {
      if (entry.isFile && entry.name.endsWith(".py")) names.push(folder + entry.name);
    }
  }
  deepStrictEqual(Object.keys(PYTHON_SOURCES).sort(), names.sort());
  for (const name of names) {
    deepStrictEqual(PYTHON_SOURCES[name], await Deno.readTextFile(new URL(name, pythonDir)), name);
  }
});

Deno.test("the job directory's file names are the same in src/local/job/dir.ts and python/bgproc/_job_dir.py", async () => {
  const source = await Deno.readTextFile(new URL("_job_dir.py", pythonDir));
  const start = source.indexOf("FILES = {");
  const block = source.slice(start, source.indexOf("}", start));
  const python = Object.fromEntries([...block.matchAll(/"(\w+)": "([^"]+)"/g)].map((match) => [match[1], match[2]]));
  deepStrictEqual(python, { ...JOB_FILES });
});
