/**
 * The runtime in python/bgproc keeps to the syntax of the oldest Python a supported Blender bundles: 3.10 (the
 * official Blender 3.4 builds; Debian's 3.4 uses 3.11, 4.3 uses 3.13 and 5.2 LTS 3.14, all of which run the suite).
 */

import { equal } from "node:assert/strict";
import { fileURLToPath } from "node:url";

const OLDEST = [3, 10];

Deno.test("python/bgproc parses as Python 3.10", async () => {
  const dir = fileURLToPath(new URL("../python/bgproc", import.meta.url));
  const check = `
import ast, pathlib, sys
bad = []
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.py")):
    try:
        ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(${OLDEST.join(", ")}))
    except SyntaxError as error:
        bad.append(f"{path}:{error.lineno}: {error.msg}")
print("\\n".join(bad))
`;
  const output = await new Deno.Command("python3", { args: ["-c", check, dir], stdout: "piped", stderr: "inherit" })
    .output();
  equal(output.code, 0);
  equal(new TextDecoder().decode(output.stdout).trim(), "");
});
