/** A job's log file: output lines appended in order, buffered so a chatty job costs few writes. */

const FLUSH_AT = 64 * 1024;

/** Appends lines to a file; `close()` writes what is buffered and closes it. */
export class LogFile {
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();
  #buffer: string[] = [];
  #buffered = 0;
  #writing: Promise<void> = Promise.resolve();
  #failed: unknown;

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /** Open `path` for appending, creating it if needed. */
  static async open(path: string): Promise<LogFile> {
    return new LogFile(await Deno.open(path, { append: true, create: true }));
  }

  /** Add a line (a newline is appended). */
  write(line: string): void {
    this.#buffer.push(line, "\n");
    this.#buffered += line.length + 1;
    if (this.#buffered >= FLUSH_AT) this.#flush();
  }

  /** Write what is buffered, close the file, and throw if any write failed. */
  async close(): Promise<void> {
    this.#flush();
    await this.#writing;
    this.#file.close();
    if (this.#failed !== undefined) throw this.#failed;
  }

  #flush(): void {
    if (this.#buffered === 0) return;
    const bytes = this.#encoder.encode(this.#buffer.join(""));
    this.#buffer = [];
    this.#buffered = 0;
    this.#writing = this.#writing.then(async () => {
      if (this.#failed !== undefined) return;
      try {
        let written = 0;
        while (written < bytes.length) written += await this.#file.write(bytes.subarray(written));
      } catch (error) {
        this.#failed = error;
      }
    });
  }
}
