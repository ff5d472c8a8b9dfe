/**
 * Blender's zstd .blend files are many independent frames plus a seek table
 * (a skippable frame at the end), so that Blender can seek. Node's zstd
 * decoder stops after the first frame, so this splits the compressed bytes
 * into frames by walking each frame's block headers (RFC 8878), pushed in
 * chunks, keeping only the frame in progress. Skippable frames are dropped.
 */

import type { Fail } from "./_sdna.ts";

const ZSTD_MAGIC = 0xfd2fb528;

type Step = "magic" | "skippable-size" | "skipping" | "frame-header" | "block-header" | "block" | "checksum";

/** Splits zstd data pushed in chunks into complete frames. */
export class ZstdFrameSplitter {
  readonly #fail: Fail;
  #step: Step = "magic";
  #frame = new Uint8Array(1 << 16);
  #frameLength = 0;
  /** Bytes still wanted by the current step. */
  #want = 4;
  #hasChecksum = false;
  #lastBlock = false;
  /** Compressed bytes seen so far. */
  position = 0;

  /** @param fail Throws the error for malformed data. */
  constructor(fail: Fail) {
    this.#fail = fail;
  }

  /** Whether the data seen so far ends exactly between frames. */
  get atFrameBoundary(): boolean {
    return this.#step === "magic" && this.#frameLength === 0;
  }

  /** Push the next chunk; `onFrame` gets each complete frame (a view, valid only during the call). */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => boolean | void): boolean {
    let at = 0;
    while (at < chunk.length) {
      if (this.#step === "skipping") {
        const take = Math.min(this.#want, chunk.length - at);
        at += take;
        this.position += take;
        this.#want -= take;
        if (this.#want === 0) this.#reset();
        continue;
      }
      const take = Math.min(this.#want, chunk.length - at);
      this.#append(chunk.subarray(at, at + take));
      at += take;
      this.position += take;
      this.#want -= take;
      if (this.#want === 0 && this.#advance()) {
        const stop = onFrame(this.#frame.subarray(0, this.#frameLength));
        this.#reset();
        if (stop === true) return true;
      }
    }
    return false;
  }

  #reset(): void {
    this.#step = "magic";
    this.#want = 4;
    this.#frameLength = 0;
  }

  #append(bytes: Uint8Array): void {
    if (this.#frameLength + bytes.length > this.#frame.length) {
      const grown = new Uint8Array(Math.max(this.#frame.length * 2, this.#frameLength + bytes.length));
      grown.set(this.#frame.subarray(0, this.#frameLength));
      this.#frame = grown;
    }
    this.#frame.set(bytes, this.#frameLength);
    this.#frameLength += bytes.length;
  }

  /** The current step's bytes are in: move on. Returns true when a whole frame is in. */
  #advance(): boolean {
    const f = this.#frame;
    const end = this.#frameLength;
    const view = new DataView(f.buffer, f.byteOffset, end);
    switch (this.#step) {
      case "magic": {
        const magic = view.getUint32(end - 4, true);
        if ((magic & 0xfffffff0) === 0x184d2a50) {
          this.#step = "skippable-size";
          this.#want = 4;
        } else if (magic === ZSTD_MAGIC) {
          this.#step = "frame-header";
          this.#want = 1;
        } else {
          this.#fail(`its zstd data has no frame at compressed byte ${this.position - 4}`);
        }
        return false;
      }
      case "skippable-size": {
        this.#want = view.getUint32(end - 4, true);
        this.#step = "skipping";
        this.#frameLength = 0;
        if (this.#want === 0) this.#reset();
        return false;
      }
      case "frame-header": {
        if (end === 5) {
          // Frame_Header_Descriptor: FCS flag (2 bits), single segment, unused, reserved, checksum, dict ID flag.
          const descriptor = f[4]!;
          if ((descriptor & 0x08) !== 0) this.#fail("its zstd frame header has the reserved bit set");
          const single = (descriptor >> 5) & 1;
          const fcsFlag = descriptor >> 6;
          this.#hasChecksum = ((descriptor >> 2) & 1) === 1;
          const rest = (single ? 0 : 1) + [0, 1, 2, 4][descriptor & 3]! +
            [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
          this.#lastBlock = false;
          if (rest > 0) {
            this.#want = rest;
            return false;
          }
        }
        this.#step = "block-header";
        this.#want = 3;
        return false;
      }
      case "block-header": {
        const header = f[end - 3]! | (f[end - 2]! << 8) | (f[end - 1]! << 16);
        const type = (header >> 1) & 3;
        const size = header >>> 3;
        if (type === 3) this.#fail("its zstd data has a reserved block type");
        if (size > 1 << 17) this.#fail("its zstd data has a block larger than 128 KiB");
        this.#lastBlock = (header & 1) === 1;
        this.#want = type === 1 ? 1 : size;
        this.#step = "block";
        if (this.#want === 0) return this.#blockDone();
        return false;
      }
      case "block":
        return this.#blockDone();
      case "checksum":
        return true;
      case "skipping":
        return false;
      default: {
        const never: never = this.#step;
        throw new Error(`unknown step ${never}`);
      }
    }
  }

  #blockDone(): boolean {
    if (!this.#lastBlock) {
      this.#step = "block-header";
      this.#want = 3;
      return false;
    }
    if (this.#hasChecksum) {
      this.#step = "checksum";
      this.#want = 4;
      return false;
    }
    return true;
  }
}
