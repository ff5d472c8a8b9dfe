/**
 * `readBlendFile`: the header, the writing Blender's version and every ID
 * block of a .blend file, without Blender. Reads what Blender 2.8 to 5.x
 * writes: the 12-byte header (`BLENDER-v304`, up to 4.x) and the 17-byte
 * one of Blender 5 (`BLENDER17-01v0502`), plain, gzip (Blender up to 2.9) or
 * zstd (Blender 3.0+). Bounded: it streams the file, keeps only block
 * headers, ID names and the DNA block, and stops at `maxBytes` of .blend
 * data, whatever sizes the file claims.
 */

import { createZstdDecompress, gunzipSync, zstdDecompressSync } from "node:zlib";
import { BlendFileError } from "../errors.ts";
import { BlendParser } from "./_parser.ts";
import type { Fail } from "./_sdna.ts";
import { ZstdFrameSplitter } from "./_zstd.ts";
import { type BlendId, collectionOf } from "./ids.ts";

/** What {@linkcode readBlendFile} finds in a .blend file. */
export interface BlendFileInfo {
  /** The file's path. */
  readonly path: string;
  /** The Blender version that wrote it, e.g. `"3.4"` or `"5.2"`. */
  readonly version: string;
  /** The version as Blender stores it, e.g. `304` or `502`. */
  readonly versionNumber: number;
  /** The writing Blender's file subversion (`bpy.app.version_file[2]`), or `null` when the file does not say. */
  readonly subversion: number | null;
  /** The .blend container format: `0` for the 12-byte header, `1` for the 17-byte one Blender 5.0+ writes. */
  readonly fileFormatVersion: 0 | 1;
  /** The size of a pointer in the writing Blender: 4 or 8 bytes. */
  readonly pointerSize: 4 | 8;
  /** The byte order of the writing machine. */
  readonly endianness: "little" | "big";
  /** How the file is compressed on disk. */
  readonly compression: "none" | "gzip" | "zstd";
  /** How many file blocks it has before its end marker (ID blocks, data blocks, DNA, ...). */
  readonly blockCount: number;
  /** Every ID block, in file order. */
  readonly ids: readonly BlendId[];
}

/** Options for {@linkcode readBlendFile} and {@linkcode readBlendFileSync}. */
export interface ReadBlendFileOptions {
  /**
   * The most bytes of .blend data (after decompression) to read: a longer
   * file, or one whose blocks claim more, is rejected with a
   * {@linkcode BlendFileError} of kind `"too-large"`. It bounds the time a
   * decompression bomb can take (about 1-3 s per GiB here) and, for
   * {@linkcode readBlendFileSync} of a gzip file, the memory. Scene files
   * are rarely larger; raise it (or pass `Infinity`) for huge ones.
   *
   * @default {1073741824} (1 GiB)
   */
  readonly maxBytes?: number;
  /** Stops the read; the promise rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

/**
 * The default `maxBytes`: 1 GiB of .blend data. Plain files are read by
 * seeking past data blocks (a 300 MB scene takes milliseconds), compressed
 * ones are decompressed as a stream (about 1-3 s per GiB here), so the cap
 * bounds what a decompression bomb or a false block size can cost.
 *
 * @example Allow a larger file
 * ```ts ignore
 * import { DEFAULT_MAX_BYTES, readBlendFile } from "@bgproc/blender";
 *
 * const info = await readBlendFile("huge_scene.blend", { maxBytes: 4 * DEFAULT_MAX_BYTES });
 * console.log(info.ids.length);
 * ```
 */
export const DEFAULT_MAX_BYTES = 2 ** 30;

const CHUNK = 1 << 16;
/** Compressed input goes to the gzip decoder in slices this small, so no output chunk is large. */
const GZIP_SLICE = 1 << 12;

type Compression = BlendFileInfo["compression"];

/**
 * Read a .blend file's header and list its ID blocks, without Blender.
 *
 * @param path The .blend file.
 * @param options `maxBytes` and `signal`.
 * @returns Its version, format, compression and ID blocks.
 * @throws {BlendFileError} When the file cannot be read, is not a .blend file bgproc can read, or is longer than `maxBytes`.
 * @throws {RangeError} When `maxBytes` is not a positive number.
 * @throws When `signal` is aborted: its `reason`.
 *
 * @example List the objects in a .blend file
 * ```ts ignore
 * import { readBlendFile } from "@bgproc/blender";
 *
 * const info = await readBlendFile("scene.blend", { signal: AbortSignal.timeout(10_000) });
 * console.log(info.version, info.ids.filter((id) => id.code === "OB").map((id) => id.name));
 * ```
 */
export async function readBlendFile(path: string, options: ReadBlendFileOptions = {}): Promise<BlendFileInfo> {
  const { maxBytes = DEFAULT_MAX_BYTES, signal } = options;
  checkMaxBytes(maxBytes);
  signal?.throwIfAborted();
  const errors = errorsFor(path);
  const parser = new BlendParser(maxBytes, errors.malformed, errors.tooLarge);
  let compression: Compression = "none";
  try {
    const file = await Deno.open(path);
    let owned = true;
    try {
      const head = new Uint8Array(4);
      const got = await readFully(file, head);
      compression = detect(head.subarray(0, got));
      await file.seek(0, Deno.SeekMode.Start);
      if (compression === "none") {
        await readPlain(file, parser, signal);
      } else if (compression === "gzip") {
        owned = false; // file.readable closes it
        await readGzip(file, parser, errors.malformed, signal);
      } else {
        await readZstd(file, parser, errors.malformed, signal);
      }
    } finally {
      if (owned) file.close();
    }
  } catch (error) {
    throw errors.wrap(error, signal);
  }
  return info(path, compression, parser);
}

/**
 * {@linkcode readBlendFile}, synchronously: for checks that must finish
 * before `addJob` returns. Bounded in time like the async reader, but not
 * as tightly in memory: plain files, and Blender's zstd files (many small
 * frames), take little; a gzip file, or one zstd frame, is decompressed
 * whole, so a crafted file can take up to `maxBytes` of memory. Prefer
 * {@linkcode readBlendFile} where you can await.
 *
 * @param path The .blend file.
 * @param options `maxBytes` (a synchronous read cannot be aborted, so it takes no `signal`).
 * @returns Its version, format, compression and ID blocks.
 * @throws {BlendFileError} When the file cannot be read, is not a .blend file bgproc can read, or is longer than `maxBytes`.
 * @throws {RangeError} When `maxBytes` is not a positive number.
 *
 * @example Check a file before using it
 * ```ts ignore
 * import { readBlendFileSync } from "@bgproc/blender";
 *
 * const { version, ids } = readBlendFileSync("scene.blend", { maxBytes: 256 * 2 ** 20 });
 * console.log(`written by Blender ${version}, ${ids.length} IDs`);
 * ```
 */
export function readBlendFileSync(path: string, options: Omit<ReadBlendFileOptions, "signal"> = {}): BlendFileInfo {
  const { maxBytes = DEFAULT_MAX_BYTES } = options;
  checkMaxBytes(maxBytes);
  const errors = errorsFor(path);
  const parser = new BlendParser(maxBytes, errors.malformed, errors.tooLarge);
  let compression: Compression = "none";
  try {
    using file = Deno.openSync(path);
    const head = new Uint8Array(4);
    const got = readFullySync(file, head);
    compression = detect(head.subarray(0, got));
    file.seekSync(0, Deno.SeekMode.Start);
    if (compression === "none") {
      readPlainSync(file, parser);
    } else if (compression === "gzip") {
      readGzipSync(file, parser, maxBytes, errors);
    } else {
      readZstdSync(file, parser, maxBytes, errors);
    }
  } catch (error) {
    throw errors.wrap(error, undefined);
  }
  return info(path, compression, parser);
}

function checkMaxBytes(maxBytes: unknown): void {
  if (typeof maxBytes !== "number" || Number.isNaN(maxBytes) || maxBytes <= 0) {
    throw new RangeError(`Cannot read .blend file as 'maxBytes' must be a number > 0: current value is ${maxBytes}`);
  }
}

function info(path: string, compression: Compression, parser: BlendParser): BlendFileInfo {
  const parsed = parser.finish();
  const major = Math.floor(parsed.versionNumber / 100);
  const minor = parsed.versionNumber % 100;
  return {
    path,
    version: `${major}.${minor}`,
    versionNumber: parsed.versionNumber,
    subversion: parsed.subversion,
    fileFormatVersion: parsed.fileFormatVersion,
    pointerSize: parsed.pointerSize,
    endianness: parsed.endianness,
    compression,
    blockCount: parsed.blockCount,
    ids: parsed.ids.map(({ code, name, linked }) => ({
      code,
      name,
      collection: collectionOf(code, parsed.versionNumber),
      linked,
    })),
  };
}

interface Errors {
  readonly malformed: Fail;
  readonly tooLarge: Fail;
  wrap(error: unknown, signal: AbortSignal | undefined): unknown;
}

function errorsFor(path: string): Errors {
  return {
    malformed: (reason) => {
      throw new BlendFileError(path, "malformed", reason);
    },
    tooLarge: (reason) => {
      throw new BlendFileError(path, "too-large", reason);
    },
    wrap: (error, signal) => {
      if (error instanceof BlendFileError) return error;
      if (signal?.aborted && error === signal.reason) return error;
      const message = error instanceof Error ? error.message : String(error);
      return new BlendFileError(path, "unreadable", message, { cause: error });
    },
  };
}

function detect(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  return "none";
}

async function readFully(file: Deno.FsFile, buffer: Uint8Array): Promise<number> {
  let got = 0;
  while (got < buffer.length) {
    const n = await file.read(buffer.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got;
}

function readFullySync(file: Deno.FsFile, buffer: Uint8Array): number {
  let got = 0;
  while (got < buffer.length) {
    const n = file.readSync(buffer.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got;
}

/** Plain files: read block headers and the blocks that matter; seek past the rest. */
async function readPlain(file: Deno.FsFile, parser: BlendParser, signal: AbortSignal | undefined): Promise<void> {
  const size = (await file.stat()).size;
  const buffer = new Uint8Array(CHUNK);
  let at = 0;
  while (!parser.done) {
    signal?.throwIfAborted();
    const skip = Math.min(parser.skippable, size - at);
    if (skip > CHUNK) {
      at = await file.seek(skip, Deno.SeekMode.Current);
      parser.skip(skip);
      continue;
    }
    const n = await file.read(buffer);
    if (n === null) return;
    at += n;
    parser.feed(buffer.subarray(0, n));
  }
}

function readPlainSync(file: Deno.FsFile, parser: BlendParser): void {
  const size = file.statSync().size;
  const buffer = new Uint8Array(CHUNK);
  let at = 0;
  while (!parser.done) {
    const skip = Math.min(parser.skippable, size - at);
    if (skip > CHUNK) {
      at = file.seekSync(skip, Deno.SeekMode.Current);
      parser.skip(skip);
      continue;
    }
    const n = file.readSync(buffer);
    if (n === null) return;
    at += n;
    parser.feed(buffer.subarray(0, n));
  }
}

/** Gzip: stream through the platform's decoder, in small input slices; stop at the ENDB block. */
async function readGzip(
  file: Deno.FsFile,
  parser: BlendParser,
  malformed: Fail,
  signal: AbortSignal | undefined,
): Promise<void> {
  const slicer = new TransformStream<Uint8Array<ArrayBuffer>, Uint8Array<ArrayBuffer>>({
    transform(chunk, controller) {
      for (let i = 0; i < chunk.length; i += GZIP_SLICE) controller.enqueue(chunk.subarray(i, i + GZIP_SLICE));
    },
  });
  const reader = file.readable.pipeThrough(slicer).pipeThrough(new DecompressionStream("gzip")).getReader();
  try {
    while (!parser.done) {
      signal?.throwIfAborted();
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        return malformed(`its gzip data is corrupt: ${(error as Error).message}`);
      }
      if (result.done) return;
      parser.feed(result.value);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

function readGzipSync(file: Deno.FsFile, parser: BlendParser, maxBytes: number, errors: Errors): void {
  const size = file.statSync().size;
  const raw = new Uint8Array(size);
  const got = readFullySync(file, raw);
  let bytes: Uint8Array;
  try {
    bytes = gunzipSync(raw.subarray(0, got), Number.isFinite(maxBytes) ? { maxOutputLength: maxBytes } : {});
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      return errors.tooLarge(`its gzip data decompresses to more than ${maxBytes} bytes (maxBytes)`);
    }
    return errors.malformed(`its gzip data is corrupt: ${(error as Error).message}`);
  }
  parser.feed(bytes);
}

/** Zstd: split the frames (Blender writes many, plus a seek table) and decode each as a stream. */
async function readZstd(
  file: Deno.FsFile,
  parser: BlendParser,
  malformed: Fail,
  signal: AbortSignal | undefined,
): Promise<void> {
  const splitter = new ZstdFrameSplitter(malformed);
  const buffer = new Uint8Array(CHUNK);
  const frames: Uint8Array[] = [];
  while (!parser.done) {
    signal?.throwIfAborted();
    const n = await file.read(buffer);
    if (n === null) break;
    splitter.push(buffer.subarray(0, n), (frame) => void frames.push(frame.slice()));
    for (let frame = frames.shift(); frame !== undefined && !parser.done; frame = frames.shift()) {
      await decodeFrame(frame, parser, malformed, signal);
    }
  }
  if (!parser.done && !splitter.atFrameBoundary) malformed("its zstd data ends inside a frame");
}

async function decodeFrame(
  frame: Uint8Array,
  parser: BlendParser,
  malformed: Fail,
  signal: AbortSignal | undefined,
): Promise<void> {
  const decoder = createZstdDecompress();
  decoder.end(frame);
  try {
    for await (const chunk of decoder) {
      signal?.throwIfAborted();
      parser.feed(chunk as Uint8Array);
      if (parser.done) break;
    }
  } catch (error) {
    if (error instanceof BlendFileError || (signal?.aborted && error === signal.reason)) throw error;
    malformed(`its zstd data is corrupt: ${(error as Error).message}`);
  } finally {
    decoder.destroy();
  }
}

function readZstdSync(file: Deno.FsFile, parser: BlendParser, maxBytes: number, errors: Errors): void {
  const malformed = errors.malformed;
  const splitter = new ZstdFrameSplitter(malformed);
  const buffer = new Uint8Array(CHUNK);
  while (!parser.done) {
    const n = file.readSync(buffer);
    if (n === null) break;
    splitter.push(buffer.subarray(0, n), (frame) => {
      const room = maxBytes - parser.position;
      let bytes: Uint8Array;
      try {
        bytes = zstdDecompressSync(frame, Number.isFinite(room) ? { maxOutputLength: Math.max(room, 1) } : {});
      } catch (error) {
        if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
          return errors.tooLarge(`its zstd data decompresses to more than ${maxBytes} bytes (maxBytes)`);
        }
        return malformed(`its zstd data is corrupt: ${(error as Error).message}`);
      }
      parser.feed(bytes);
      return parser.done;
    });
  }
  if (!parser.done && !splitter.atFrameBoundary) malformed("its zstd data ends inside a frame");
}
