/**
 * Reading .blend files from Deno, without Blender: the header, the file
 * blocks, and every ID block's code and name. Handles the files Blender 2.8
 * to 3.x writes, plain or compressed (gzip, zstd).
 */

import { gunzipSync, zstdDecompressSync } from "node:zlib";
import { InvalidJobError } from "./errors.ts";

/** One ID data-block in a .blend file. */
export interface BlendId {
  /** The two-letter ID code, e.g. `"OB"` (object), `"ME"` (mesh), `"MA"` (material). */
  readonly code: string;
  /** The name without its code prefix, e.g. `"Cube"`. */
  readonly name: string;
  /** The `bpy.data` collection it belongs to, e.g. `"objects"`, or `null` for codes bgproc does not map. */
  readonly collection: string | null;
}

/** What {@linkcode readBlendFile} finds in a .blend file. */
export interface BlendFileInfo {
  /** The file's path. */
  readonly path: string;
  /** The Blender version that wrote it, e.g. `"3.4"`. */
  readonly version: string;
  /** The version as Blender stores it, e.g. `304`. */
  readonly versionNumber: number;
  /** The size of a pointer in the writing Blender: 4 or 8 bytes. */
  readonly pointerSize: 4 | 8;
  /** The byte order of the writing machine. */
  readonly endianness: "little" | "big";
  /** How the file is compressed on disk. */
  readonly compression: "none" | "gzip" | "zstd";
  /** How many file blocks it has (ID blocks, data blocks, DNA, ...). */
  readonly blockCount: number;
  /** Every ID block, in file order. */
  readonly ids: readonly BlendId[];
}

/** The two-letter ID codes and the `bpy.data` collections they belong to. */
export const ID_COLLECTIONS: Readonly<Record<string, string>> = {
  AC: "actions",
  AR: "armatures",
  BR: "brushes",
  CA: "cameras",
  CF: "cache_files",
  CU: "curves",
  CV: "hair_curves",
  GD: "grease_pencils",
  GR: "collections",
  IM: "images",
  IP: "ipos",
  KE: "shape_keys",
  LA: "lights",
  LI: "libraries",
  LP: "lightprobes",
  LS: "linestyles",
  LT: "lattices",
  MA: "materials",
  MB: "metaballs",
  MC: "movieclips",
  ME: "meshes",
  MS: "masks",
  NT: "node_groups",
  OB: "objects",
  PA: "particles",
  PC: "paint_curves",
  PL: "palettes",
  PT: "pointclouds",
  SC: "scenes",
  SK: "speakers",
  SO: "sounds",
  SN: "screens",
  SR: "screens",
  TE: "textures",
  TX: "texts",
  VF: "fonts",
  VO: "volumes",
  WM: "window_managers",
  WO: "worlds",
  WS: "workspaces",
};

/**
 * Read a .blend file's header and list its ID blocks, without Blender.
 *
 * @param path The .blend file.
 * @returns Its version, pointer size, byte order, compression and ID blocks.
 * @throws {InvalidJobError} When the file cannot be read or is not a .blend file of a supported kind.
 *
 * @example List the objects in a .blend file
 * ```ts ignore
 * import { readBlendFile } from "@bgproc/blender";
 *
 * const info = await readBlendFile("scene.blend");
 * console.log(info.version, info.ids.filter((id) => id.code === "OB").map((id) => id.name));
 * ```
 */
export async function readBlendFile(path: string): Promise<BlendFileInfo> {
  let raw: Uint8Array;
  try {
    raw = await Deno.readFile(path);
  } catch (error) {
    throw unreadable(path, error);
  }
  return decodeBlend(raw, path);
}

/** {@linkcode readBlendFile}, synchronously: for checks that must finish before `addJob` returns. */
export function readBlendFileSync(path: string): BlendFileInfo {
  let raw: Uint8Array;
  try {
    raw = Deno.readFileSync(path);
  } catch (error) {
    throw unreadable(path, error);
  }
  return decodeBlend(raw, path);
}

function unreadable(path: string, error: unknown): InvalidJobError {
  return new InvalidJobError("path", `Cannot read ${path} as a .blend file: ${(error as Error).message}`, {
    cause: error,
  });
}

function decodeBlend(raw: Uint8Array, path: string): BlendFileInfo {
  let compression: BlendFileInfo["compression"] = "none";
  let bytes = raw;
  try {
    if (raw[0] === 0x1f && raw[1] === 0x8b) {
      compression = "gzip";
      bytes = gunzipSync(raw);
    } else if (raw[0] === 0x28 && raw[1] === 0xb5 && raw[2] === 0x2f && raw[3] === 0xfd) {
      compression = "zstd";
      bytes = zstdFrames(raw);
    }
  } catch (error) {
    throw new InvalidJobError("path", `Cannot decompress ${path} (${compression}): ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { path, compression, ...parseBlend(bytes, path) };
}

const ascii = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8");

/**
 * Blender writes zstd .blend files as many frames with a seek table (a
 * skippable frame at the end: one entry per frame, then the frame count, a
 * flags byte and the magic 0x8F92EAB1). Decode each frame and join them.
 */
function zstdFrames(raw: Uint8Array): Uint8Array {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const end = raw.length;
  if (end < 9 || view.getUint32(end - 4, true) !== 0x8f92eab1) return zstdDecompressSync(raw);
  const frames = view.getUint32(end - 9, true);
  const entrySize = (view.getUint8(end - 5) & 0x80) !== 0 ? 12 : 8;
  const tableStart = end - 9 - frames * entrySize;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (let i = 0; i < frames; i++) {
    const compressed = view.getUint32(tableStart + i * entrySize, true);
    parts.push(zstdDecompressSync(raw.subarray(offset, offset + compressed)));
    offset += compressed;
  }
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Parse an uncompressed .blend file. */
export function parseBlend(bytes: Uint8Array, path = "(bytes)"): Omit<BlendFileInfo, "path" | "compression"> {
  const fail = (why: string): never => {
    throw new InvalidJobError("path", `${path} is not a .blend file Blender 2.8-3.x wrote: ${why}`);
  };
  if (bytes.length < 12 || ascii.decode(bytes.subarray(0, 7)) !== "BLENDER") fail("no BLENDER header");
  const pointerChar = String.fromCharCode(bytes[7]!);
  const endianChar = String.fromCharCode(bytes[8]!);
  if ((pointerChar !== "_" && pointerChar !== "-") || (endianChar !== "v" && endianChar !== "V")) {
    fail(`unsupported header ${JSON.stringify(ascii.decode(bytes.subarray(0, 17)))} (Blender 4.1 or newer?)`);
  }
  const pointerSize = pointerChar === "_" ? 4 : 8;
  const little = endianChar === "v";
  const versionText = ascii.decode(bytes.subarray(9, 12));
  if (!/^\d{3}$/.test(versionText)) fail(`bad version ${JSON.stringify(versionText)}`);
  const versionNumber = Number(versionText);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerSize = 16 + pointerSize;

  const idBlocks: { code: string; offset: number; size: number }[] = [];
  let dna: { offset: number; size: number } | undefined;
  let blockCount = 0;
  let offset = 12;
  while (true) {
    if (offset + headerSize > bytes.length) fail("it ends before its ENDB block");
    const code = ascii.decode(bytes.subarray(offset, offset + 4));
    const size = view.getInt32(offset + 4, little);
    const data = offset + headerSize;
    if (code === "ENDB") break;
    if (size < 0 || data + size > bytes.length) fail(`block ${JSON.stringify(code)} at ${offset} runs past the end`);
    blockCount++;
    if (code === "DNA1") dna = { offset: data, size };
    else if (code[2] === "\0" && code[3] === "\0" && code[0] !== "\0") {
      idBlocks.push({ code: code.slice(0, 2), offset: data, size });
    }
    offset = data + size;
  }
  if (dna === undefined) fail("it has no DNA1 block");
  const { nameOffset, nameLength } = idNameField(bytes, view, dna!, little, pointerSize, fail);
  const ids = idBlocks.filter((block) => block.size >= nameOffset + nameLength).map((block) => {
    const field = bytes.subarray(block.offset + nameOffset, block.offset + nameOffset + nameLength);
    const end = field.indexOf(0);
    const full = utf8.decode(end < 0 ? field : field.subarray(0, end));
    return { code: block.code, name: full.slice(2), collection: ID_COLLECTIONS[block.code] ?? null };
  });
  const major = Math.floor(versionNumber / 100);
  const minor = versionNumber % 100;
  return {
    version: `${major}.${minor}`,
    versionNumber,
    pointerSize,
    endianness: little ? "little" : "big",
    blockCount,
    ids,
  };
}

/** Find where struct ID keeps `name[N]`, from the file's own DNA. */
function idNameField(
  bytes: Uint8Array,
  view: DataView,
  dna: { offset: number; size: number },
  little: boolean,
  pointerSize: number,
  fail: (why: string) => never,
): { nameOffset: number; nameLength: number } {
  let at = dna.offset;
  const end = dna.offset + dna.size;
  const expect = (tag: string) => {
    if (ascii.decode(bytes.subarray(at, at + 4)) !== tag) fail(`its DNA has no ${tag} section`);
    at += 4;
  };
  const align = () => at = (at + 3) & ~3;
  const strings = (count: number) => {
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      const stop = bytes.indexOf(0, at);
      if (stop < 0 || stop > end) fail("its DNA strings run past the block");
      out.push(ascii.decode(bytes.subarray(at, stop)));
      at = stop + 1;
    }
    return out;
  };
  expect("SDNA");
  expect("NAME");
  const names = strings(view.getInt32((at += 4) - 4, little));
  align();
  expect("TYPE");
  const types = strings(view.getInt32((at += 4) - 4, little));
  align();
  expect("TLEN");
  const lengths = types.map((_, i) => view.getInt16(at + i * 2, little));
  at += types.length * 2;
  align();
  expect("STRC");
  const structCount = view.getInt32(at, little);
  at += 4;
  for (let s = 0; s < structCount; s++) {
    const typeIndex = view.getInt16(at, little);
    const fieldCount = view.getInt16(at + 2, little);
    at += 4;
    if (types[typeIndex] !== "ID") {
      at += fieldCount * 4;
      continue;
    }
    let fieldOffset = 0;
    for (let f = 0; f < fieldCount; f++) {
      const fieldType = view.getInt16(at + f * 4, little);
      const fieldName = names[view.getInt16(at + f * 4 + 2, little)] ?? "";
      const dims = [...fieldName.matchAll(/\[(\d+)\]/g)].reduce((n, m) => n * Number(m[1]), 1);
      const isPointer = fieldName.startsWith("*") || fieldName.startsWith("(*");
      const size = (isPointer ? pointerSize : lengths[fieldType] ?? 0) * dims;
      if (fieldName.replace(/\[.*$/, "") === "name") return { nameOffset: fieldOffset, nameLength: size };
      fieldOffset += size;
    }
    fail("its DNA's ID struct has no name field");
  }
  return fail("its DNA has no ID struct");
}
