/** The Blenders the tests run on: the default one, and the extra ones (4.3 and 5.2 LTS from .ci/blender-root). */

import { isAlive } from "../_helpers.ts";

/** One Blender to run tests on. */
export interface TestBlender {
  /** A short label for logs and result folders: the version, as "3.4". */
  readonly label: string;
  /** The executable (or wrapper); undefined for the default Blender, which the tests find as users do. */
  readonly path: string | undefined;
  /** The first line of `--version`, as "Blender 3.4.1" ("Blender 4.3, being built" until it is). */
  readonly version: string;
  /** For a Blender that .ci/setup is still building: settles when the build ends, rejecting when it failed. */
  readonly ready?: Promise<void>;
}

/** What finding the Blenders found: the Blenders, and a line for each extra Blender that is missing. */
export interface FoundBlenders {
  readonly blenders: TestBlender[];
  readonly missing: string[];
}

async function versionOf(path: string): Promise<string | undefined> {
  try {
    const { stdout, success } = await new Deno.Command(path, {
      args: ["--version"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    const line = new TextDecoder().decode(stdout).split("\n").find((text) => text.startsWith("Blender "));
    return success && line !== undefined ? line.trim() : undefined;
  } catch {
    return undefined;
  }
}

/** The pid of the .ci/blender-root build of `version` that is running now, if one is. */
function buildingPid(cache: string, version: string): number | undefined {
  try {
    const pid = Number(Deno.readTextFileSync(`${cache}/${version}.pid`).trim());
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Waits for a running build of a Blender root to end; rejects, with its log's last lines, when it made none. */
async function built(cache: string, version: string, path: string): Promise<void> {
  while (buildingPid(cache, version) !== undefined) await new Promise((resolve) => setTimeout(resolve, 2_000));
  if (await versionOf(path) !== undefined) return;
  const log = `${Deno.env.get("TMPDIR") || "/tmp"}/bgproc-blender-root-${version}.log`;
  let tail = "";
  try {
    tail = Deno.readTextFileSync(log).trimEnd().split("\n").slice(-15).join("\n");
  } catch {
    // No log: the build was not started by .ci/setup.
  }
  throw new Error(`the build of Blender ${version} in ${cache} failed (log: ${log})${tail ? `:\n${tail}` : ""}`);
}

function labelOf(version: string): string {
  return /^Blender (\d+\.\d+)/.exec(version)?.[1] ?? version;
}

/**
 * The default Blender (`$BLENDER`, else `blender` on PATH) and, unless `extras` is false, the extra ones:
 * `BGPROC_TEST_BLENDERS` (colon-separated) or else 4.3 and 5.2 from .ci/blender-root's cache.
 */
export async function findTestBlenders(extras: boolean): Promise<FoundBlenders> {
  const blenders: TestBlender[] = [];
  const missing: string[] = [];
  const defaultPath = Deno.env.get("BLENDER") || "blender";
  const defaultVersion = await versionOf(defaultPath);
  if (defaultVersion === undefined) missing.push(`the default Blender (${defaultPath}) does not run`);
  else blenders.push({ label: labelOf(defaultVersion), path: undefined, version: defaultVersion });
  if (!extras) return { blenders, missing };
  const listed = (Deno.env.get("BGPROC_TEST_BLENDERS") ?? "").split(":").filter((path) => path !== "");
  if (listed.length === 0) return cached(blenders, missing);
  for (const path of listed) {
    const version = await versionOf(path);
    if (version === undefined) {
      missing.push(`no Blender at ${path} (bash .ci/blender-root 4.3|5.2 makes one)`);
    } else if (!blenders.some((blender) => blender.label === labelOf(version))) {
      blenders.push({ label: labelOf(version), path, version });
    }
  }
  return { blenders, missing };
}

/** 4.3 and 5.2 from .ci/blender-root's cache: built, being built (waited for), or missing. */
async function cached(blenders: TestBlender[], missing: string[]): Promise<FoundBlenders> {
  const cache = Deno.env.get("BGPROC_BLENDER_CACHE") || "/var/cache/bgproc-blender";
  for (const label of ["4.3", "5.2"]) {
    const path = `${cache}/${label}/blender`;
    const version = await versionOf(path);
    if (version !== undefined) blenders.push({ label, path, version });
    else if (buildingPid(cache, label) !== undefined) {
      const ready = built(cache, label, path);
      ready.catch(() => {}); // Its units report the failure.
      blenders.push({ label, path, version: `Blender ${label}, being built`, ready });
    } else missing.push(`no Blender at ${path} (bash .ci/blender-root ${label} makes one)`);
  }
  return { blenders, missing };
}
