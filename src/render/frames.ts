/**
 * The frame list of a render: a small grammar (`"1-250"`, `"1-10,20,30-40x2"`) or an array of frame numbers,
 * parsed into sorted, distinct frames, and split into chunks.
 *
 * @module
 */

import { InvalidJobError } from "../errors.ts";

/** The highest frame number Blender renders (its `MAXFRAME`). */
export const MAX_FRAME = 1_048_574;

/** One item of the grammar: `N`, `A-B` or `A-BxS`, spaces allowed around the parts. */
const ITEM = /^\s*(\d+)\s*(?:-\s*(\d+)\s*(?:x\s*(\d+)\s*)?)?$/;

/** The most frames one render may list (a typo such as `1-10000000` fails here, not in memory). */
const MAX_COUNT = MAX_FRAME + 1;

function framesError(message: string): InvalidJobError {
  return new InvalidJobError("frames", `Cannot render as 'frames' ${message}`);
}

function checkFrame(frame: number, given: string): number {
  if (!Number.isSafeInteger(frame) || frame < 0 || frame > MAX_FRAME) {
    throw framesError(`holds frame ${given}, which is not a whole number from 0 to ${MAX_FRAME}`);
  }
  return frame;
}

/**
 * The frames of a render, sorted and distinct.
 *
 * A string is a comma-separated list of items: `N` (one frame), `A-B` (A to B, both included, A <= B) and
 * `A-BxS` (every S-th frame from A to B: `1-9x4` is 1, 5, 9). Frames are whole numbers from 0 to
 * {@linkcode MAX_FRAME}; overlaps are allowed and counted once. An array lists frames one by one.
 *
 * @param frames The frames, e.g. `"1-250"`, `"1-10,20,30-40x2"` or `[1, 5, 9]`.
 * @returns The frames, sorted and distinct.
 * @throws {InvalidJobError} With field `"frames"`, naming the item that is wrong, when `frames` is empty or
 * not of the grammar.
 *
 * @example Parse a frame list
 * ```ts
 * import { parseFrames } from "@bgproc/blender";
 *
 * console.log(parseFrames("1-5,9,20-30x5")); // [1, 2, 3, 4, 5, 9, 20, 25, 30]
 * ```
 */
export function parseFrames(frames: string | readonly number[]): number[] {
  const found = new Set<number>();
  if (Array.isArray(frames)) {
    if (frames.length === 0) throw framesError("must list at least one frame: current value is []");
    for (const frame of frames) {
      checkFrame(frame, typeof frame === "number" ? String(frame) : JSON.stringify(frame) ?? String(frame));
      found.add(frame);
    }
  } else if (typeof frames === "string") {
    if (frames.trim() === "") throw framesError(`must list at least one frame: current value is ""`);
    for (const item of frames.split(",")) addItem(found, item);
  } else {
    throw framesError(
      `must be a string such as "1-250" or an array of frame numbers: current value is ${
        frames === null ? "null" : typeof frames
      }`,
    );
  }
  return [...found].sort((a, b) => a - b);
}

function addItem(found: Set<number>, item: string): void {
  const match = ITEM.exec(item);
  if (match === null) {
    throw framesError(
      `has ${JSON.stringify(item.trim())}, which is not N, A-B or A-BxSTEP ` +
        `(frames are whole numbers; items are separated by commas, e.g. "1-10,20,30-40x2")`,
    );
  }
  const first = checkFrame(Number(match[1]), match[1]!);
  const last = match[2] === undefined ? first : checkFrame(Number(match[2]), match[2]);
  const step = match[3] === undefined ? 1 : Number(match[3]);
  if (last < first) throw framesError(`has ${JSON.stringify(item.trim())}, a range that ends before it starts`);
  if (!Number.isSafeInteger(step) || step < 1) {
    throw framesError(`has ${JSON.stringify(item.trim())}, whose step must be a whole number >= 1`);
  }
  if (found.size + Math.floor((last - first) / step) + 1 > MAX_COUNT) {
    throw framesError(`lists more than ${MAX_COUNT} frames`);
  }
  for (let frame = first; frame <= last; frame += step) found.add(frame);
}

/**
 * Split sorted frames into chunks of at most `size` frames, in order.
 *
 * @param frames Sorted frames.
 * @param size The most frames per chunk.
 * @returns The chunks.
 *
 * @example Chunks of four
 * ```ts
 * import { chunkFrames } from "@bgproc/blender";
 *
 * console.log(chunkFrames([1, 2, 3, 4, 5, 6], 4)); // [[1, 2, 3, 4], [5, 6]]
 * ```
 */
export function chunkFrames(frames: readonly number[], size: number): number[][] {
  const chunks: number[][] = [];
  for (let start = 0; start < frames.length; start += size) chunks.push(frames.slice(start, start + size));
  return chunks;
}

/**
 * Sorted frames written back in the grammar, ranges collapsed: `[1, 2, 3, 5]` is `"1-3,5"`.
 *
 * @param frames Sorted, distinct frames.
 * @returns The frames as text.
 *
 * @example Name failed frames
 * ```ts
 * import { formatFrames } from "@bgproc/blender";
 *
 * console.log(formatFrames([1, 2, 3, 7, 9, 10])); // "1-3,7,9-10"
 * ```
 */
export function formatFrames(frames: readonly number[]): string {
  const parts: string[] = [];
  let index = 0;
  while (index < frames.length) {
    const first = frames[index]!;
    let last = first;
    while (frames[index + 1] === last + 1) last = frames[++index]!;
    parts.push(first === last ? `${first}` : `${first}-${last}`);
    index++;
  }
  return parts.join(",");
}
