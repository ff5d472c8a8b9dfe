/**
 * A job's log file: output lines appended in order, buffered so a chatty job
 * costs few writes. Opened without blocking: a FIFO nobody reads, or any
 * other file that is not a regular file (or `/dev/null`-like device), is
 * refused at once instead of hanging the job.
 */

import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

const FLUSH_AT = 64 * 1024;

/** Appends lines to a file; `close()` writes what is buffered and closes it. */
export class LogFile {
  readonly #file: FileHandle;
  readonly #encoder = new TextEncoder();
  #buffer: string[] = [];
  #buffered = 0;
  #writing: Promise<void> = Promise.resolve();
  #failed: unknown;

  private constructor(file: FileHandle) {
    this.#file = file;
  }

  /** Open `path` for appending, creating it if needed. */
  static async open(path: string): Promise<LogFile> {
    const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK;
    const file = await open(path, flags, 0o644);
    const info = await file.stat().catch(async (error) => {
      await file.close();
      throw error;
    });
    if (!info.isFile() && !info.isCharacterDevice()) {
      await file.close();
      throw new Error(`${path} is not a regular file`);
    }
    return new LogFile(file);
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
    await this.#file.close();
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
        while (written < bytes.length) written += (await this.#file.write(bytes, written)).bytesWritten;
      } catch (error) {
        this.#failed = error;
      }
    });
  }
}
