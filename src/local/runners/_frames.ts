/**
 * The fork-mode zygote's stdout, read by the host: Blender's own start-up lines, then the sync line, then frames
 * (see `python/bgproc/_zygote.py`): a kind byte, an attempt id and a length (4 bytes each, big-endian), then that many
 * bytes. `m` is a JSON message, `o`/`e` a chunk of a child's stdout/stderr, `O`/`E` the end of that stream.
 */

/** What the zygote writes once before its first frame. */
const SYNC = new TextEncoder().encode("\n\x1ebgproc-frames\n");
const HEADER = 9;
/** A frame larger than this is not the zygote's (it relays 64 KiB at a time): the stream is broken. */
const MAX_PAYLOAD = 1 << 24;
/** Blender's start-up lines kept while looking for the sync line. */
const MAX_PREAMBLE = 1 << 20;

/** One frame from the zygote. */
export interface Frame {
  readonly kind: "m" | "o" | "e" | "O" | "E";
  readonly id: number;
  readonly payload: Uint8Array;
}

const KINDS = new Set(["m", "o", "e", "O", "E"]);

/**
 * The frames on `stream`, after the sync line; each line before it goes to `onLine`. Throws on a frame no zygote
 * writes (the stream is then useless: the caller ends the zygote).
 */
export async function* readFrames(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): AsyncGenerator<Frame> {
  let buffer: Uint8Array = new Uint8Array(0);
  let synced = false;
  for await (const chunk of stream) {
    buffer = concat(buffer, chunk);
    if (!synced) {
      const at = indexOf(buffer, SYNC);
      if (at < 0) {
        buffer = preamble(buffer, onLine);
        continue;
      }
      for (const line of new TextDecoder().decode(buffer.subarray(0, at)).split("\n")) if (line !== "") onLine(line);
      buffer = buffer.subarray(at + SYNC.length);
      synced = true;
    }
    let offset = 0;
    while (buffer.length - offset >= HEADER) {
      const view = new DataView(buffer.buffer, buffer.byteOffset + offset, HEADER);
      const kind = String.fromCharCode(view.getUint8(0));
      const id = view.getUint32(1);
      const length = view.getUint32(5);
      if (!KINDS.has(kind) || length > MAX_PAYLOAD) {
        throw new Error(`the zygote wrote a frame of kind ${JSON.stringify(kind)} and ${length} bytes`);
      }
      if (buffer.length - offset - HEADER < length) break;
      const payload = buffer.slice(offset + HEADER, offset + HEADER + length);
      offset += HEADER + length;
      yield { kind: kind as Frame["kind"], id, payload };
    }
    buffer = buffer.subarray(offset);
  }
}

/** Pass on the whole lines of Blender's start-up output; keep the unfinished one (and the sync line's start). */
function preamble(buffer: Uint8Array, onLine: (line: string) => void): Uint8Array {
  const last = buffer.lastIndexOf(10);
  if (last < 0) return buffer.length > MAX_PREAMBLE ? buffer.subarray(buffer.length - SYNC.length) : buffer;
  for (const line of new TextDecoder().decode(buffer.subarray(0, last)).split("\n")) if (line !== "") onLine(line);
  return buffer.subarray(last); // The newline may start the sync line.
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  let at = haystack.indexOf(needle[0]!);
  while (at >= 0 && at + needle.length <= haystack.length) {
    let i = 1;
    while (i < needle.length && haystack[at + i] === needle[i]) i++;
    if (i === needle.length) return at;
    at = haystack.indexOf(needle[0]!, at + 1);
  }
  return -1;
}
