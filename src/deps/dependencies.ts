/**
 * The files a .blend uses, as {@linkcode JobManager.dependencies} and `bgproc deps` tell them: found inside Blender by
 * bgproc's own job (`python/bgproc/jobs/deps_job.py`), read back here as checked values.
 */

/**
 * What uses a file.
 *
 * @example The textures of a shot
 * ```ts ignore
 * import type { Dependencies } from "@bgproc/blender";
 *
 * const images = (deps: Dependencies) => deps.files.filter((file) => file.kind === "image");
 * ```
 */
export type DependencyKind =
  | "library"
  | "image"
  | "movie clip"
  | "sound"
  | "font"
  | "volume"
  | "cache"
  | "text"
  | "point cache"
  | "fluid cache"
  | "module"
  | "other";

const KINDS = new Set<string>([
  "library",
  "image",
  "movie clip",
  "sound",
  "font",
  "volume",
  "cache",
  "text",
  "point cache",
  "fluid cache",
  "module",
  "other",
]);

/**
 * One file a .blend (or its script) uses.
 *
 * @example Say where a missing file was expected
 * ```ts ignore
 * import type { Dependency } from "@bgproc/blender";
 *
 * const say = (file: Dependency) => `${file.kind} ${file.written} (${file.path})${file.exists ? "" : ": missing"}`;
 * ```
 */
export interface Dependency {
  /** Its absolute path (one inside a linked library resolved from that library's folder, as Blender does). */
  readonly path: string;
  /** What uses it. */
  readonly kind: DependencyKind;
  /** Its path as the .blend (or the library) holds it: `//`-relative, or absolute. */
  readonly written: string;
  /** Whether the file is there. */
  readonly exists: boolean;
  /** Its size in bytes (0 when missing). */
  readonly size: number;
}

/**
 * Every file a .blend uses: linked libraries (and what they link), images (each UDIM tile, each file of a sequence),
 * movie clips, sounds, fonts, volumes, cache files, text blocks from files, point and fluid caches on disk; and the
 * modules its script imports from the script's own folder. Packed files travel inside the .blend and are not listed.
 *
 * @example List what a shot needs, and what is missing
 * ```ts ignore
 * import { JobManager } from "@bgproc/blender";
 *
 * await using manager = new JobManager();
 * const { files, missing, bytes } = await manager.dependencies("shot.blend");
 * console.log(`${files.length} files, ${bytes} bytes`);
 * for (const file of missing) console.error(`missing: ${file.path} (${file.kind})`);
 * ```
 */
export interface Dependencies {
  /** The .blend file, absolute. */
  readonly blendFile: string;
  /** The script whose imports were followed, or `null`. */
  readonly script: string | null;
  /** Every file, in the order found (libraries first). */
  readonly files: readonly Dependency[];
  /** Those of `files` that are not there. */
  readonly missing: readonly Dependency[];
  /** The size of the files that are there, in bytes. */
  readonly bytes: number;
  /**
   * The folders searched for a sequence's files, UDIM tiles and cache files: a file added to one of them would be
   * found by another listing.
   */
  readonly folders: readonly string[];
}

/** The job's `python_data`, checked, as {@linkcode Dependencies}. */
export function readDependencies(data: unknown, script: string | null): Dependencies {
  const { blend, files, folders } = (data ?? {}) as { blend?: unknown; files?: unknown; folders?: unknown };
  if (typeof blend !== "string" || !Array.isArray(files)) {
    throw new Error("bgproc's dependencies job returned no list of files");
  }
  const read: Dependency[] = [];
  for (const entry of files as Record<string, unknown>[]) {
    const { path, kind, written, exists, size } = entry ?? {};
    if (typeof path !== "string" || typeof written !== "string" || typeof exists !== "boolean") continue;
    read.push({
      path,
      kind: (typeof kind === "string" && KINDS.has(kind) ? kind : "other") as DependencyKind,
      written,
      exists,
      size: typeof size === "number" && Number.isFinite(size) && size >= 0 ? size : 0,
    });
  }
  const missing = read.filter((file) => !file.exists);
  const bytes = read.reduce((sum, file) => sum + file.size, 0);
  const searched = Array.isArray(folders)
    ? folders.filter((folder): folder is string => typeof folder === "string")
    : [];
  return { blendFile: blend, script, files: read, missing, bytes, folders: searched };
}
