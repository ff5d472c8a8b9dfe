/**
 * The layout the README's "How it works" shows: no import loop in src/, and below the facade no module imports it
 * (src/api/job_manager.ts): the backends, the actors and the runners know the seam, not the facade.
 */

import { deepStrictEqual } from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../src", import.meta.url));
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["'](\.{1,2}\/[^"']+\.ts)["']/g;

/** Every module of src/ and what it imports statically (types included), as paths relative to src/. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) walk(path);
      else if (entry.name.endsWith(".ts")) {
        const text = Deno.readTextFileSync(path);
        const imports = [...text.matchAll(IMPORT)].map((match) =>
          relative(SRC, normalize(join(dirname(path), match[1]!)))
        );
        graph.set(relative(SRC, path), imports);
      }
    }
  };
  walk(SRC);
  return graph;
}

/** The import loops (strongly connected groups of more than one module), each sorted. */
function loops(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  let next = 0;
  const visit = (node: string) => {
    index.set(node, next);
    low.set(node, next++);
    stack.push(node);
    for (const to of graph.get(node) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(node, Math.min(low.get(node)!, low.get(to)!));
      } else if (stack.includes(to)) low.set(node, Math.min(low.get(node)!, index.get(to)!));
    }
    if (low.get(node) === index.get(node)) {
      const group: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        group.push(member);
      } while (member !== node);
      if (group.length > 1) found.push(group.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

Deno.test("src/ has no import loop", () => {
  deepStrictEqual(loops(importGraph()), []);
});

Deno.test("below the facade nothing imports it: only the doors above it (cli, service, nats manager) do", () => {
  const above = /^(cli\/|service\/|nats\/manager\.ts$|api\/job_manager\.ts$)/;
  const importers = [...importGraph()].filter(([module, imports]) =>
    !above.test(module) && imports.includes("api/job_manager.ts")
  ).map(([module]) => module);
  deepStrictEqual(importers, []);
});
