/**
 * Data blocks on the command line: `--blocks FILE:COLLECTION=NAME,NAME` passes them to the job (the add-on's
 * "Add Job" with data blocks), and the blocks a job returns are never dropped without a word.
 */

import { dirname, join } from "node:path";
import { didYouMean } from "../_suggest.ts";
import {
  DATA_BLOCK_COLLECTIONS,
  type DataBlockCollection,
  type DataBlocks,
  type DataBlockSelection,
} from "../types.ts";
import type { Flags } from "./_args.ts";
import { UsageError } from "./_errors.ts";
import { userPath } from "./_paths.ts";

/**
 * The job's `passedDataBlocks` from `--blocks` (repeatable; all from one .blend file: a job gets one library).
 *
 * @returns The selection, or `undefined` without `--blocks`.
 * @throws {UsageError} For an entry that is not `FILE:COLLECTION=NAME[,NAME...]`, or two files.
 */
export function passedBlocks(flags: Flags): DataBlockSelection | undefined {
  const entries = (flags.blocks as string[] | undefined) ?? [];
  if (entries.length === 0) return undefined;
  let from: { given: string; path: string } | undefined;
  const selection: Record<string, string[]> = {};
  for (const entry of entries) {
    const parts = /^(.+):([A-Za-z_]+)=(.+)$/.exec(entry);
    if (parts === null) {
      throw new UsageError(
        `--blocks takes FILE:COLLECTION=NAME[,NAME...] (e.g. scene.blend:objects=Cube,Suzanne), not '${entry}'`,
      );
    }
    const [, file, collection, names] = parts as unknown as [string, string, string, string];
    if (!(DATA_BLOCK_COLLECTIONS as readonly string[]).includes(collection)) {
      throw new UsageError(
        `--blocks: '${collection}' is not a data-block collection${didYouMean(collection, DATA_BLOCK_COLLECTIONS)}`,
      );
    }
    const path = userPath(file);
    if (from !== undefined && from.path !== path) {
      throw new UsageError(`--blocks: a job takes its blocks from one .blend file, not from ${from.given} and ${file}`);
    }
    from = { given: file, path };
    const list = names.split(",").map((name) => name.trim()).filter((name) => name !== "");
    selection[collection] = [...(selection[collection] ?? []), ...list];
  }
  return { from: from!.path, ...selection } as DataBlockSelection;
}

/** `objects: Cube, Suzanne; materials: Red`: the blocks the script returned, by collection. */
export function describeBlocks(dataBlocks: DataBlocks): { count: number; text: string } {
  let count = 0;
  const parts: string[] = [];
  for (const [collection, blocks] of Object.entries(dataBlocks)) {
    if (collection === "path" || !Array.isArray(blocks)) continue;
    const returned = (blocks as DataBlocks[DataBlockCollection]).filter((block) => block.returned);
    if (returned.length === 0) continue;
    count += returned.length;
    parts.push(`${collection}: ${returned.map((block) => block.name).join(", ")}`);
  }
  return { count, text: parts.join("; ") };
}

/**
 * The data-block manifest to print: with `--output DIR` its library is copied to `DIR/data_blocks.blend` (the
 * work root goes when the command ends), without it the manifest has no path.
 */
export async function keptDataBlocks(dataBlocks: DataBlocks | null, outputDir: string | null): Promise<object | null> {
  if (dataBlocks === null) return null;
  const { path, ...manifest } = dataBlocks;
  if (outputDir === null) return manifest;
  const kept = join(userPath(outputDir), "data_blocks.blend");
  await Deno.mkdir(dirname(kept), { recursive: true });
  await Deno.copyFile(path, kept);
  return { path: kept, ...manifest };
}
