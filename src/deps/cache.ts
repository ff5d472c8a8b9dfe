/**
 * A host's dependency lists, kept while the files they name are unchanged: the first job of a .blend asks Blender
 * (`findDependencies`), the next ones only look at the files' sizes and times.
 */

import type { Dependencies } from "./dependencies.ts";
import { findDependencies, type FindOptions } from "./find.ts";

/** The most lists kept (the oldest goes first). */
const MAX_ENTRIES = 256;

/** Dependency lists by .blend file and script. */
export class DependencyCache {
  readonly #options: FindOptions;
  readonly #entries = new Map<string, { stamp: string; deps: Dependencies }>();
  /** Listings under way, by key: later asks share them (a failed one is not kept). */
  readonly #running = new Map<string, Promise<Dependencies>>();

  constructor(options: FindOptions) {
    this.#options = options;
  }

  /**
   * The dependencies of `blendFile` (and `script`'s imports): the kept list while no file it names changed. Jobs of
   * one .blend submitted at once (a render's chunks) share one listing: one Blender, not one per job.
   */
  of(blendFile: string, script: string | null, signal?: AbortSignal): Promise<Dependencies> {
    const key = `${blendFile}\0${script ?? ""}`;
    const running = this.#running.get(key);
    if (running !== undefined) return running;
    const listing = this.#list(key, blendFile, script, signal).finally(() => this.#running.delete(key));
    this.#running.set(key, listing);
    return listing;
  }

  async #list(key: string, blendFile: string, script: string | null, signal?: AbortSignal): Promise<Dependencies> {
    const kept = this.#entries.get(key);
    if (kept !== undefined && kept.stamp === await stampOf(blendFile, script, kept.deps)) return kept.deps;
    const deps = await findDependencies(blendFile, script, { ...this.#options, ...(signal ? { signal } : {}) });
    this.#entries.delete(key);
    this.#entries.set(key, { stamp: await stampOf(blendFile, script, deps), deps });
    if (this.#entries.size > MAX_ENTRIES) this.#entries.delete(this.#entries.keys().next().value!);
    return deps;
  }
}

/**
 * The sizes and modification times of the .blend, the script, every file of `deps` (a missing one as such) and every
 * folder searched for sequences, tiles and caches (a file added there changes its time).
 */
async function stampOf(blendFile: string, script: string | null, deps: Dependencies): Promise<string> {
  const paths = [
    blendFile,
    ...(script === null ? [] : [script]),
    ...deps.files.map((file) => file.path),
    ...deps.folders,
  ];
  const stamps = await Promise.all(paths.map(async (path) => {
    try {
      const info = await Deno.stat(path);
      return [path, info.size, info.mtime?.getTime() ?? 0, info.ino ?? 0];
    } catch {
      return [path, null];
    }
  }));
  return JSON.stringify(stamps);
}
