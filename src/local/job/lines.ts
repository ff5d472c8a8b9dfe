/** Splitting process output into lines, and keeping a bounded tail of them. */

/**
 * A `TransformStream` from text chunks to lines (without their `\n` or
 * `\r\n`). Each chunk is scanned once; a line longer than `maxLine`
 * characters is passed on in pieces of `maxLine`, so output without newlines
 * costs linear time and bounded memory.
 */
export function lineSplitter(maxLine = 1 << 20): TransformStream<string, string> {
  let pending: string[] = [];
  let pendingLength = 0;
  const emit = (controller: TransformStreamDefaultController<string>, line: string) =>
    controller.enqueue(line.endsWith("\r") ? line.slice(0, -1) : line);
  return new TransformStream<string, string>({
    transform(chunk, controller) {
      let start = 0;
      let newline = chunk.indexOf("\n");
      while (newline >= 0) {
        const piece = chunk.slice(start, newline);
        emit(controller, pending.length === 0 ? piece : pending.join("") + piece);
        pending = [];
        pendingLength = 0;
        start = newline + 1;
        newline = chunk.indexOf("\n", start);
      }
      if (start < chunk.length) {
        pending.push(chunk.slice(start));
        pendingLength += chunk.length - start;
        while (pendingLength >= maxLine) {
          const joined = pending.join("");
          controller.enqueue(joined.slice(0, maxLine));
          const rest = joined.slice(maxLine);
          pending = rest === "" ? [] : [rest];
          pendingLength = rest.length;
        }
      }
    },
    flush(controller) {
      if (pendingLength > 0) emit(controller, pending.join(""));
    },
  });
}

/** The last lines of a stream, at most `limit` characters of them. */
export class LineTail {
  #lines: string[] = [];
  #head = 0;
  #size = 0;
  #dropped = 0;
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Add a line; drop the oldest ones while over the limit. */
  push(line: string): void {
    const room = Math.max(0, this.#limit - 1); // A line longer than the limit keeps its end, plus its newline.
    const kept = line.length > room ? line.slice(line.length - room) : line;
    this.#lines.push(kept);
    this.#size += kept.length + 1;
    while (this.#size > this.#limit && this.#head < this.#lines.length) {
      this.#size -= (this.#lines[this.#head] as string).length + 1;
      this.#head++;
      this.#dropped++;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#lines.length) {
      this.#lines = this.#lines.slice(this.#head);
      this.#head = 0;
    }
  }

  /** How many lines were dropped to stay under the limit. */
  get dropped(): number {
    return this.#dropped;
  }

  /** The kept lines joined with `\n`, each ending in one. */
  text(): string {
    const lines = this.#lines.slice(this.#head);
    return lines.length === 0 ? "" : lines.join("\n") + "\n";
  }

  /** The last `count` kept lines, joined like `text()`. */
  last(count: number): string {
    const lines = this.#lines.slice(Math.max(this.#head, this.#lines.length - count));
    return lines.length === 0 ? "" : lines.join("\n") + "\n";
  }
}

/** `args` as one line a POSIX shell would run as the same command. */
export function shellQuote(args: readonly string[]): string {
  return args.map((arg) => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'"'"'`)}'`).join(" ");
}
