/** The Blenders the tests run on: the default one, and the extra ones (4.3 and 5.2 LTS from .ci/blender-root). */

/** One Blender to run tests on. */
export interface TestBlender {
  /** A short label for logs and result folders: the version, as "3.4". */
  readonly label: string;
  /** The executable (or wrapper); undefined for the default Blender, which the tests find as users do. */
  readonly path: string | undefined;
  /** The first line of `--version`, as "Blender 3.4.1". */
  readonly version: string;
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
  const cache = Deno.env.get("BGPROC_BLENDER_CACHE") || "/var/cache/bgproc-blender";
  const paths = listed.length > 0 ? listed : ["4.3", "5.2"].map((version) => `${cache}/${version}/blender`);
  for (const path of paths) {
    const version = await versionOf(path);
    if (version === undefined) {
      missing.push(`no Blender at ${path} (bash .ci/blender-root 4.3|5.2 makes one)`);
    } else if (!blenders.some((blender) => blender.label === labelOf(version))) {
      blenders.push({ label: labelOf(version), path, version });
    }
  }
  return { blenders, missing };
}
