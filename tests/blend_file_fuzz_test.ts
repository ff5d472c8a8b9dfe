/**
 * readBlendFile against hostile input, without Blender: small .blend files
 * built here in every container format, then truncated, bit-flipped, given
 * huge sizes and counts, a looping SDNA, and gzip/zstd bombs. Each case must
 * either parse or throw BlendFileError, within a few seconds in all.
 */

import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { BlendFileError, InvalidJobError, readBlendFile, readBlendFileSync } from "../mod.ts";

type Format = "v0-8" | "v0-4" | "v0-8-big" | "v1";

interface Block {
  readonly code: string;
  readonly data: Uint8Array;
}

const FORMATS: readonly Format[] = ["v0-8", "v0-4", "v0-8-big", "v1"];
const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** An SDNA with struct ID { void *next; char name[nameLength]; } and struct FileGlobal { short subversion; }. */
function sdna(format: Format, nameLength: number): Uint8Array {
  const little = format !== "v0-8-big";
  const pointer = format === "v0-4" ? 4 : 8;
  const parts: number[] = [];
  const text = (s: string) => parts.push(...latin1(s));
  const int = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, little);
    parts.push(...b);
  };
  const short = (v: number) => {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setInt16(0, v, little);
    parts.push(...b);
  };
  const pad = () => {
    while (parts.length % 4 !== 0) parts.push(0);
  };
  const names = ["*next", `name[${nameLength}]`, "subversion"];
  const types = ["char", "short", "void", "ID", "FileGlobal"];
  text("SDNANAME");
  int(names.length);
  for (const name of names) text(`${name}\0`);
  pad();
  text("TYPE");
  int(types.length);
  for (const type of types) text(`${type}\0`);
  pad();
  text("TLEN");
  for (const size of [1, 2, 0, pointer + nameLength, 2]) short(size);
  pad();
  text("STRC");
  int(2);
  for (const v of [3, 2, 2, 0, 0, 1, 4, 1, 1, 2]) short(v);
  return Uint8Array.from(parts);
}

/** A .blend file in `format` with the given ID names (code + name, e.g. "OBCube"), GLOB subversion 7, DNA1, ENDB. */
function blendFile(format: Format, ids: readonly string[], nameLength = format === "v1" ? 258 : 66): Uint8Array {
  const little = format !== "v0-8-big";
  const pointer = format === "v0-4" ? 4 : 8;
  const header = format === "v1"
    ? "BLENDER17-01v0502"
    : `BLENDER${pointer === 4 ? "_" : "-"}${little ? "v" : "V"}${format === "v0-4" ? "279" : "304"}`;
  const blocks: Block[] = [];
  for (const id of ids) {
    const data = new Uint8Array(pointer + nameLength);
    data.set(new TextEncoder().encode(id.startsWith("ID") ? id.slice(2) : id).subarray(0, nameLength - 1), pointer);
    // "ID" + name: a linked ID's placeholder ("IDOBCube" is a linked object Cube).
    blocks.push({ code: id.startsWith("ID") ? "ID" : id.slice(0, 2), data });
    blocks.push({ code: "DATA", data: new Uint8Array(40).fill(7) });
  }
  const glob = new Uint8Array(2);
  new DataView(glob.buffer).setInt16(0, 7, little);
  blocks.unshift({ code: "GLOB", data: glob });
  blocks.push({ code: "DNA1", data: sdna(format, nameLength) });
  blocks.push({ code: "ENDB", data: new Uint8Array(0) });
  return concat([latin1(header), ...blocks.map((block) => bhead(format, block))]);
}

function bhead(format: Format, block: Block): Uint8Array {
  const little = format !== "v0-8-big";
  const size = format === "v1" ? 32 : format === "v0-4" ? 20 : 24;
  const out = new Uint8Array(size + block.data.length);
  const view = new DataView(out.buffer);
  const code = block.code.length === 2 ? (little ? `${block.code}\0\0` : `\0\0${block.code}`) : block.code;
  out.set(latin1(code), 0);
  if (format === "v1") {
    view.setBigInt64(16, BigInt(block.data.length), true);
    view.setBigInt64(24, 1n, true);
  } else {
    view.setInt32(4, block.data.length, little);
    view.setInt32(size - 4, 1, little);
  }
  out.set(block.data, size);
  return out;
}

/** A deterministic PRNG (mulberry32), so a failing case can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Parse `bytes` from a file, sync and async: either both parse alike or both throw BlendFileError. */
async function parsesOrRejects(dir: string, bytes: Uint8Array, label: string, maxBytes?: number): Promise<void> {
  const path = join(dir, "case.blend");
  await Deno.writeFile(path, bytes);
  const options = maxBytes === undefined ? {} : { maxBytes };
  let sync: unknown;
  try {
    sync = readBlendFileSync(path, options);
  } catch (error) {
    ok(error instanceof BlendFileError, `${label}: sync threw ${error}`);
    sync = error;
  }
  try {
    const info = await readBlendFile(path, options);
    ok(!(sync instanceof Error), `${label}: async parsed but sync threw ${sync}`);
    deepStrictEqual(info, sync, `${label}: sync and async disagree`);
  } catch (error) {
    ok(error instanceof BlendFileError, `${label}: async threw ${error}`);
    ok(sync instanceof BlendFileError, `${label}: sync parsed but async threw ${error}`);
  }
}

Deno.test("files built in every container format parse: header, version, subversion, IDs, long UTF-8 names", async () => {
  await using dir = await tempDir();
  const long = `OB${"Ω".repeat(120)}`; // 240 bytes: fits Blender 5's name[258], cut in a name[66]
  for (const format of FORMATS) {
    const path = join(dir.path, `${format}.blend`);
    await Deno.writeFile(path, blendFile(format, ["OBCube", "MEMesh.001", "MAMatériau", long, "IDOBLinked"]));
    const info = await readBlendFile(path);
    deepStrictEqual(info, readBlendFileSync(path));
    equal(info.subversion, 7);
    equal(info.compression, "none");
    equal(info.pointerSize, format === "v0-4" ? 4 : 8);
    equal(info.endianness, format === "v0-8-big" ? "big" : "little");
    equal(info.fileFormatVersion, format === "v1" ? 1 : 0);
    equal(info.version, format === "v1" ? "5.2" : format === "v0-4" ? "2.79" : "3.4");
    equal(info.blockCount, 2 + 5 * 2);
    const expectedLong = format === "v1" ? long.slice(2) : new TextDecoder().decode(
      new TextEncoder().encode(long).subarray(2, 65),
    ).replace(/\uFFFD$/, "\uFFFD");
    deepStrictEqual(info.ids.map(({ code, name, collection, linked }) => [code, name, collection, linked]), [
      ["OB", "Cube", "objects", false],
      ["ME", "Mesh.001", "meshes", false],
      ["MA", "Matériau", "materials", false],
      ["OB", expectedLong, "objects", false],
      ["OB", "Linked", "objects", true],
    ]);
  }
});

Deno.test("gzip and zstd (Blender's many frames and seek table) decode as the plain file does", async () => {
  await using dir = await tempDir();
  const plain = blendFile("v1", ["OBCube", "SCScene"]);
  // Blender-style zstd: one frame per piece, then a skippable seek-table frame.
  const pieces = [plain.subarray(0, 100), plain.subarray(100, 300), plain.subarray(300)];
  const frames = pieces.map((piece) => zstdCompressSync(piece));
  const table = new Uint8Array(8 + frames.length * 8 + 9);
  const view = new DataView(table.buffer);
  view.setUint32(0, 0x184d2a5e, true);
  view.setUint32(4, table.length - 8, true);
  frames.forEach((frame, i) => {
    view.setUint32(8 + i * 8, frame.length, true);
    view.setUint32(12 + i * 8, pieces[i]!.length, true);
  });
  view.setUint32(table.length - 9, frames.length, true);
  view.setUint32(table.length - 4, 0x8f92eab1, true);
  const cases = [["gzip", gzipSync(plain)], ["zstd", concat([...frames, table])]] as const;
  const expected = (await readBlendFile(await write(dir.path, "plain.blend", plain))).ids;
  for (const [compression, bytes] of cases) {
    const path = await write(dir.path, `${compression}.blend`, bytes);
    const info = await readBlendFile(path);
    equal(info.compression, compression);
    deepStrictEqual(info.ids, expected);
    deepStrictEqual(readBlendFileSync(path), info);
  }
});

Deno.test("truncation at every offset, in every format and compression, parses or throws BlendFileError", async () => {
  await using dir = await tempDir();
  for (const format of FORMATS) {
    const bytes = blendFile(format, ["OBCube", "MEMesh"]);
    for (let end = 0; end < bytes.length; end++) {
      const cut = bytes.subarray(0, end);
      await parsesOrRejects(dir.path, cut, `${format} cut at ${end}`);
      if (end % 7 === 0) {
        await parsesOrRejects(dir.path, gzipSync(bytes).subarray(0, Math.floor(end / 5)), `${format} gzip cut`);
        await parsesOrRejects(dir.path, zstdCompressSync(bytes).subarray(0, Math.floor(end / 5)), `${format} zstd cut`);
      }
    }
    // Blender accepts an ENDB block header cut short (it reads only the code); anything cut earlier is an error.
    const endb = indexOf(bytes, "ENDB");
    equal(readBlendFileSync(await write(dir.path, "endb.blend", bytes.subarray(0, endb + 4))).ids.length, 2);
    const short = await write(dir.path, "endb.blend", bytes.subarray(0, endb + 3));
    throws(() => readBlendFileSync(short), BlendFileError);
  }
});

Deno.test("random byte flips parse or throw BlendFileError", async () => {
  await using dir = await tempDir();
  const next = random(9);
  for (const format of FORMATS) {
    const bytes = blendFile(format, ["OBCube", "MEMesh", "MAMaterial"]);
    for (let i = 0; i < 250; i++) {
      const copy = bytes.slice();
      const flips = 1 + Math.floor(next() * 4);
      for (let f = 0; f < flips; f++) {
        const at = Math.floor(next() * copy.length);
        copy[at] = copy[at]! ^ (1 << Math.floor(next() * 8));
      }
      await parsesOrRejects(dir.path, copy, `${format} flip case ${i}`);
    }
  }
});

Deno.test("huge claimed block sizes and SDNA counts fail fast with BlendFileError", async () => {
  await using dir = await tempDir();
  const plain = blendFile("v0-8", ["OBCube"]);
  const dnaAt = findCode(plain, "DNA1") + 24;
  const cases: [string, (bytes: Uint8Array, view: DataView) => void][] = [
    ["block len 2^31-1", (_, v) => v.setInt32(12 + 4, 0x7fffffff, true)],
    ["block len negative", (_, v) => v.setInt32(12 + 4, -24, true)],
    ["names count 2^31-1", (_, v) => v.setInt32(dnaAt + 8, 0x7fffffff, true)],
    ["names count negative", (_, v) => v.setInt32(dnaAt + 8, -1, true)],
    ["no SDNA tag", (b) => b.set(latin1("XDNA"), dnaAt)],
  ];
  for (const [label, mutate] of cases) {
    const bytes = plain.slice();
    mutate(bytes, new DataView(bytes.buffer));
    await parsesOrRejects(dir.path, bytes, label);
    throws(() => readBlendFileSync(join(dir.path, "case.blend")), BlendFileError, label);
  }
  const large = blendFile("v1", ["OBCube"]);
  for (const length of [2n ** 62n, -(2n ** 40n), 2n ** 40n]) {
    const bytes = large.slice();
    new DataView(bytes.buffer).setBigInt64(17 + 16, length, true);
    await parsesOrRejects(dir.path, bytes, `v1 len ${length}`);
    throws(() => readBlendFileSync(join(dir.path, "case.blend")), BlendFileError);
  }
});

Deno.test("a looping SDNA (negative member counts, indices out of range) throws BlendFileError", async () => {
  await using dir = await tempDir();
  const plain = blendFile("v0-8", ["OBCube"]);
  const dna = findCode(plain, "DNA1") + 24;
  const strc = dna + indexOf(plain.subarray(dna), "STRC");
  for (
    const [label, offset, value] of [
      ["member count -1", strc + 8 + 2, -1],
      ["member count -32768", strc + 8 + 2, -32768],
      ["struct type out of range", strc + 8, 999],
      ["member name out of range", strc + 8 + 6, 999],
      ["struct count 2^31-1", strc + 4, 0x7fffffff],
    ] as const
  ) {
    const bytes = plain.slice();
    const view = new DataView(bytes.buffer);
    if (label.startsWith("struct count")) view.setInt32(offset, value, true);
    else view.setInt16(offset, value, true);
    await write(dir.path, "loop.blend", bytes);
    const error = await rejects(readBlendFile(join(dir.path, "loop.blend")), BlendFileError, label).then(() => null);
    equal(error, null);
  }
});

Deno.test("gzip and zstd bombs stop at maxBytes with a too-large BlendFileError; zero-filled data stops at once", async () => {
  await using dir = await tempDir();
  const header = latin1("BLENDER-v304");
  const dataHeader = bhead("v0-8", { code: "DATA", data: new Uint8Array(0) });
  const headers = new Uint8Array(dataHeader.length * (1 << 20)); // 24 MiB of empty DATA blocks, never an ENDB
  for (let at = 0; at < headers.length; at += dataHeader.length) headers.set(dataHeader, at);
  const bombs = [
    ["gzip", gzipSync(concat([header, headers]))],
    ["zstd", zstdCompressSync(concat([header, headers]))],
  ] as const;
  for (const [kind, bomb] of bombs) {
    ok(bomb.length < 1 << 20, `${kind} bomb is small on disk: ${bomb.length}`);
    const path = await write(dir.path, `bomb.${kind}`, bomb);
    for (
      const read of [
        (o: object) => readBlendFile(path, o),
        (o: object) => Promise.resolve().then(() => readBlendFileSync(path, o)),
      ]
    ) {
      await rejects(read({ maxBytes: 4 << 20 }), (e: unknown) => e instanceof BlendFileError && e.kind === "too-large");
      await rejects(read({}), (e: unknown) => e instanceof BlendFileError && /before its ENDB/.test(e.reason));
    }
  }
  const zeros = gzipSync(concat([header, new Uint8Array(64 << 20)]));
  const path = await write(dir.path, "zeros.gz", zeros);
  await rejects(readBlendFile(path), (e: unknown) => e instanceof BlendFileError && /has no code/.test(e.reason));
});

Deno.test("BlendFileError is an InvalidJobError; bad options and missing files are reported", async () => {
  await using dir = await tempDir();
  const text = await write(dir.path, "text.blend", latin1("hello, not a blend file"));
  await rejects(readBlendFile(text), (e: unknown) => {
    ok(e instanceof BlendFileError && e instanceof InvalidJobError);
    equal(e.path, text);
    equal(e.kind, "malformed");
    equal(e.field, "path");
    return /no BLENDER header/.test(e.message);
  });
  await rejects(
    readBlendFile(join(dir.path, "missing.blend")),
    (e: unknown) => (e as BlendFileError).kind === "unreadable",
  );
  await rejects(readBlendFile(dir.path), (e: unknown) => (e as BlendFileError).kind === "unreadable");
  await rejects(readBlendFile(text, { maxBytes: 0 }), RangeError);
  throws(() => readBlendFileSync(text, { maxBytes: Number.NaN }), RangeError);
  const plain = await write(dir.path, "plain.blend", blendFile("v1", ["OBCube"]));
  const reason = new Error("stop");
  await rejects(readBlendFile(plain, { signal: AbortSignal.abort(reason) }), (e: unknown) => e === reason);
  const unknown = await write(dir.path, "future.blend", latin1("BLENDER17-02v0700").slice());
  await rejects(readBlendFile(unknown), (e: unknown) => /unknown header/.test((e as Error).message));
});

function findCode(bytes: Uint8Array, code: string): number {
  return indexOf(bytes, code);
}

function indexOf(bytes: Uint8Array, text: string): number {
  const needle = latin1(text);
  outer: for (let i = 0; i + needle.length <= bytes.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error(`${text} not found`);
}

async function write(dir: string, name: string, bytes: Uint8Array): Promise<string> {
  const path = join(dir, name);
  await Deno.writeFile(path, bytes);
  return path;
}

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "bgproc-blend-fuzz-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}
