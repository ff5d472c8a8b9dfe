/**
 * A push parser for uncompressed .blend data: fed chunks in file order, it
 * keeps only what listing the IDs needs (the file header, each block header,
 * a short prefix of each ID block, the GLOB and DNA1 blocks) and skips the
 * rest. Memory stays in proportion to the bytes really fed, whatever sizes
 * the file claims; a seekable source can skip data blocks without reading.
 *
 * Formats (Blender's `BLO_core_blend_header.hh`, `BLO_core_bhead.hh`):
 *
 * - Header version 0, 12 bytes: `BLENDER`, `_` (4-byte pointers) or `-`
 *   (8-byte), `v` (little-endian) or `V` (big-endian), 3 version digits
 *   (`BLENDER-v304`). Block headers: BHead4 (code, len int32, old uint32,
 *   SDNAnr, nr: 20 bytes) or SmallBHead8 (code, len int32, old uint64,
 *   SDNAnr, nr: 24 bytes).
 * - Header version 1 (written by Blender 5.0+, tested here with 5.2), 17 bytes:
 *   `BLENDER`, 2 digits header size (`17`), `-`, 2 digits format version
 *   (`01`), `v`, 4 version digits (`BLENDER17-01v0502`). Always 8-byte
 *   pointers, little-endian. Block headers: LargeBHead8 (code, SDNAnr int32,
 *   old uint64, len int64, nr int64: 32 bytes).
 */

import { type Fail, findField, parseSdna } from "./_sdna.ts";

/** The most bytes kept from the start of each ID block (where struct ID, and its name, lives). */
export const ID_PREFIX_LIMIT = 1024;
/** The most bytes kept from the GLOB block (struct FileGlobal, for the subversion). */
const GLOB_PREFIX_LIMIT = 1024;

/** One ID block as found: its code and name. */
export interface ParsedId {
  readonly code: string;
  readonly name: string;
  readonly linked: boolean;
}

/** What the parser finds. */
export interface ParsedBlend {
  readonly versionNumber: number;
  readonly subversion: number | null;
  readonly fileFormatVersion: 0 | 1;
  readonly pointerSize: 4 | 8;
  readonly endianness: "little" | "big";
  readonly blockCount: number;
  readonly ids: readonly ParsedId[];
}

interface Header {
  readonly versionNumber: number;
  readonly fileFormatVersion: 0 | 1;
  readonly pointerSize: 4 | 8;
  readonly little: boolean;
  readonly bheadSize: 20 | 24 | 32;
}

type State = "header" | "bhead" | "capture" | "skip";
type CaptureKind = "id" | "dna" | "glob";

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8");

/** Parses .blend data pushed in chunks; see the module comment. */
export class BlendParser {
  /** How many bytes of .blend data have been consumed (fed or skipped). */
  position = 0;
  /** Whether the ENDB block was reached: nothing more is needed. */
  done = false;

  readonly #fail: Fail;
  readonly #tooLarge: Fail;
  readonly #maxBytes: number;
  #state: State = "header";
  #header: Header | null = null;
  readonly #pending = new Uint8Array(32);
  readonly #pendingView = new DataView(this.#pending.buffer);
  #pendingLength = 0;
  #pendingWant = 12;
  #blockCount = 0;
  #remaining = 0;
  #capture: Uint8Array | null = null;
  #captureAt = 0;
  #captureKind: CaptureKind = "id";
  #afterCapture = 0;
  #captureTarget = 0;
  #dna: Uint8Array | null = null;
  #glob: Uint8Array | null = null;
  /** ID block prefixes, one after another, and per ID: code (two char codes), start, length, full length. */
  #arena = new Uint8Array(4096);
  #arenaLength = 0;
  #entries = new Float64Array(64);
  #entryCount = 0;
  #currentCode = 0;
  #currentLength = 0;

  /**
   * @param maxBytes The most bytes of .blend data to accept.
   * @param fail Throws the error for a malformed file.
   * @param tooLarge Throws the error for a file longer than `maxBytes`.
   */
  constructor(maxBytes: number, fail: Fail, tooLarge: Fail) {
    this.#maxBytes = maxBytes;
    this.#fail = fail;
    this.#tooLarge = tooLarge;
  }

  /** Bytes that the parser would discard next: a seekable source may skip them with {@linkcode skip}. */
  get skippable(): number {
    return this.#state === "skip" ? this.#remaining : 0;
  }

  /** Skip `count` bytes (at most {@linkcode skippable}) without reading them. */
  skip(count: number): void {
    if (this.#state !== "skip" || count > this.#remaining) throw new Error("BlendParser.skip past its block");
    this.#skipped(count);
  }

  /** Feed the next chunk of .blend data. Bytes after the ENDB block are ignored. */
  feed(chunk: Uint8Array): void {
    let at = 0;
    let view: DataView | undefined;
    while (at < chunk.length && !this.done) {
      const available = chunk.length - at;
      switch (this.#state) {
        case "bhead":
          if (this.#pendingLength === 0 && available >= this.#pendingWant) {
            // Fast path: the whole block header is in this chunk.
            if (this.#isEndbAt(chunk, at)) {
              this.position += 4;
              this.done = true;
              break;
            }
            view ??= new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
            const size = this.#pendingWant;
            this.position += size;
            this.#readBhead(chunk, view, at, this.position - size);
            at += size;
            break;
          }
        // falls through
        case "header": {
          const take = Math.min(this.#pendingWant - this.#pendingLength, available);
          this.#pending.set(chunk.subarray(at, at + take), this.#pendingLength);
          this.#pendingLength += take;
          at += take;
          this.position += take;
          if (this.#state === "bhead" && this.#pendingLength >= 4 && this.#isEndbAt(this.#pending, 0)) {
            this.done = true;
          } else if (this.#pendingLength === this.#pendingWant) {
            if (this.#state === "header") this.#readHeader();
            else this.#readBhead(this.#pending, this.#pendingView, 0, this.position - this.#pendingWant);
          }
          break;
        }
        case "capture": {
          const capture = this.#capture!;
          const take = Math.min(capture.length - this.#captureAt, available);
          capture.set(chunk.subarray(at, at + take), this.#captureAt);
          this.#captureAt += take;
          at += take;
          this.position += take;
          if (this.#captureAt === capture.length) this.#endCapture();
          break;
        }
        case "skip": {
          const take = Math.min(this.#remaining, available);
          at += take;
          this.#skipped(take);
          break;
        }
        default: {
          const never: never = this.#state;
          throw new Error(`unknown state ${never}`);
        }
      }
    }
  }

  #skipped(count: number): void {
    this.#remaining -= count;
    this.position += count;
    if (this.#remaining === 0) this.#expectBhead();
  }

  /** The data ended: check that it was complete and return what was found. */
  finish(): ParsedBlend {
    if (!this.done) {
      if (this.#state === "header" && this.position < 7) this.#fail("no BLENDER header");
      this.#fail(`it ends after ${this.position} bytes, before its ENDB block`);
    }
    const header = this.#header!;
    if (this.#dna === null) this.#fail("it has no DNA1 block");
    const sdna = parseSdna(this.#dna!, header.little, header.pointerSize, this.#fail);
    const name = findField(sdna, "ID", "name");
    if (name === null) this.#fail("its DNA has no struct ID with a name");
    const nameEnd = name!.offset + name!.size;
    if (name!.size < 3 || nameEnd > ID_PREFIX_LIMIT) {
      this.#fail(`its DNA puts ID names at bytes ${name!.offset}-${nameEnd}, not within the first ${ID_PREFIX_LIMIT}`);
    }
    const ids: ParsedId[] = [];
    for (let i = 0; i < this.#entryCount; i++) {
      const code = this.#entries[i * 4]!;
      const start = this.#entries[i * 4 + 1]!;
      const fullLength = this.#entries[i * 4 + 3]!;
      const codeText = String.fromCharCode(code & 0xff, code >> 8);
      if (fullLength < nameEnd) {
        this.#fail(`its ${JSON.stringify(codeText)} ID block ${i} has ${fullLength} bytes, too few for an ID name`);
      }
      const field = this.#arena.subarray(start + name!.offset, start + nameEnd);
      const stop = field.indexOf(0);
      const text = stop < 0 ? field : field.subarray(0, stop);
      // A linked ID's placeholder block has code "ID"; its name says what it is.
      const linked = codeText === "ID";
      const idCode = linked ? latin1.decode(text.subarray(0, 2)) : codeText;
      ids.push({ code: idCode, name: utf8.decode(text.subarray(2)), linked });
    }
    return {
      versionNumber: header.versionNumber,
      subversion: this.#subversion(sdna, header.little),
      fileFormatVersion: header.fileFormatVersion,
      pointerSize: header.pointerSize,
      endianness: header.little ? "little" : "big",
      blockCount: this.#blockCount,
      ids,
    };
  }

  #subversion(sdna: ReturnType<typeof parseSdna>, little: boolean): number | null {
    const field = findField(sdna, "FileGlobal", "subversion");
    const glob = this.#glob;
    if (field === null || glob === null || field.size !== 2 || field.offset + 2 > glob.length) return null;
    return new DataView(glob.buffer, glob.byteOffset, glob.byteLength).getInt16(field.offset, little);
  }

  #isEndbAt(bytes: Uint8Array, at: number): boolean {
    return bytes[at] === 0x45 && bytes[at + 1] === 0x4e && bytes[at + 2] === 0x44 && bytes[at + 3] === 0x42;
  }

  #readHeader(): void {
    const p = this.#pending;
    if (latin1.decode(p.subarray(0, 7)) !== "BLENDER") this.#fail("no BLENDER header");
    const text = latin1.decode(p.subarray(0, this.#pendingLength));
    const unknown = () =>
      this.#fail(`unknown header ${JSON.stringify(text)} (written by a Blender newer than this reader knows?)`);
    const legacy = /^BLENDER([_-])([vV])(\d{3})$/.exec(text);
    if (legacy !== null) {
      const pointerSize = legacy[1] === "_" ? 4 : 8;
      this.#header = {
        versionNumber: Number(legacy[3]),
        fileFormatVersion: 0,
        pointerSize,
        little: legacy[2] === "v",
        bheadSize: pointerSize === 4 ? 20 : 24,
      };
    } else if (this.#pendingLength === 12) {
      if (!/^BLENDER\d\d/.test(text) || text.slice(7, 9) !== "17") unknown();
      this.#pendingWant = 17;
      return;
    } else {
      const large = /^BLENDER17-(\d\d)v(\d{4})$/.exec(text);
      if (large === null || large[1] !== "01") unknown();
      this.#header = {
        versionNumber: Number(large![2]),
        fileFormatVersion: 1,
        pointerSize: 8,
        little: true,
        bheadSize: 32,
      };
    }
    this.#expectBhead();
  }

  #expectBhead(): void {
    this.#state = "bhead";
    this.#pendingLength = 0;
    this.#pendingWant = this.#header!.bheadSize;
    if (this.position + this.#pendingWant > this.#maxBytes) this.#overCap(this.#pendingWant);
  }

  #overCap(more: number): never {
    return this.#tooLarge(
      `it goes on past ${this.#maxBytes} bytes (maxBytes): ${more} more bytes needed at byte ${this.position}`,
    );
  }

  /** Read the block header at `bytes[at..]` (all of it there); `blockAt` is its position in the file. */
  #readBhead(bytes: Uint8Array, view: DataView, at: number, blockAt: number): void {
    const header = this.#header!;
    const little = header.little;
    const c0 = bytes[at]!, c1 = bytes[at + 1]!, c2 = bytes[at + 2]!, c3 = bytes[at + 3]!;
    if ((c0 | c1 | c2 | c3) === 0) this.#fail(`its block at byte ${blockAt} has no code`);
    let length: number;
    if (header.bheadSize === 32) {
      length = view.getInt32(at + 20, true) * 2 ** 32 + view.getUint32(at + 16, true);
    } else {
      length = view.getInt32(at + 4, little);
    }
    if (length < 0) this.#fail(`its block at byte ${blockAt} claims a negative length (${length})`);
    if (this.position + length > this.#maxBytes) this.#overCap(length);
    this.#blockCount++;
    // ID blocks have a two-letter code padded with zero bytes: "OB\0\0" (big-endian files: "\0\0OB").
    const idCode = little
      ? (c2 === 0 && c3 === 0 && c0 !== 0 ? c0 | (c1 << 8) : -1)
      : (c0 === 0 && c1 === 0 && c2 !== 0 ? c2 | (c3 << 8) : -1);
    if (idCode >= 0) {
      this.#currentCode = idCode;
      this.#currentLength = length;
      this.#startCapture("id", Math.min(length, ID_PREFIX_LIMIT), length);
    } else if (c0 === 0x44 && c1 === 0x4e && c2 === 0x41 && c3 === 0x31) { // DNA1
      this.#startCapture("dna", length, length);
    } else if (c0 === 0x47 && c1 === 0x4c && c2 === 0x4f && c3 === 0x42) { // GLOB
      this.#startCapture("glob", Math.min(length, GLOB_PREFIX_LIMIT), length);
    } else {
      this.#startSkip(length);
    }
  }

  #startCapture(kind: CaptureKind, keep: number, length: number): void {
    this.#captureKind = kind;
    this.#afterCapture = length - keep;
    if (kind === "id") {
      this.#reserve(keep);
      this.#capture = this.#arena.subarray(this.#arenaLength, this.#arenaLength + keep);
    } else {
      // Grows with the bytes that really arrive, never by the size the block claims.
      this.#capture = new Uint8Array(Math.min(keep, 1 << 16));
      this.#captureTarget = keep;
    }
    this.#captureAt = 0;
    this.#state = "capture";
    if (keep === 0) this.#endCapture();
  }

  #endCapture(): void {
    const kind = this.#captureKind;
    if (kind !== "id" && this.#captureAt < this.#captureTarget) {
      const grown = new Uint8Array(Math.min(this.#captureTarget, this.#capture!.length * 2));
      grown.set(this.#capture!);
      this.#capture = grown;
      return;
    }
    if (kind === "id") {
      this.#addEntry(this.#currentCode, this.#arenaLength, this.#captureAt, this.#currentLength);
      this.#arenaLength += this.#captureAt;
    } else if (kind === "dna") {
      this.#dna = this.#capture;
    } else {
      this.#glob = this.#capture;
    }
    this.#capture = null;
    this.#startSkip(this.#afterCapture);
  }

  #startSkip(length: number): void {
    if (length === 0) {
      this.#expectBhead();
      return;
    }
    this.#state = "skip";
    this.#remaining = length;
  }

  #reserve(count: number): void {
    if (this.#arenaLength + count <= this.#arena.length) return;
    const grown = new Uint8Array(Math.max(this.#arena.length * 2, this.#arenaLength + count));
    grown.set(this.#arena.subarray(0, this.#arenaLength));
    this.#arena = grown;
  }

  #addEntry(code: number, start: number, length: number, fullLength: number): void {
    if ((this.#entryCount + 1) * 4 > this.#entries.length) {
      const grown = new Float64Array(this.#entries.length * 2);
      grown.set(this.#entries);
      this.#entries = grown;
    }
    this.#entries.set([code, start, length, fullLength], this.#entryCount * 4);
    this.#entryCount++;
  }
}
