/** The `logFile`s of a host's NATS jobs: the lines this host receives, appended with a header per attempt. */

import type { LogLine } from "../types.ts";

interface Open {
  readonly path: string;
  readonly worker: () => string | null;
  attempt: number;
  /** The writes so far, one after another; `null` once the file could not be opened. */
  writing: Promise<Deno.FsFile | null>;
}

/** Each job's log file, written in order, closed when the job ends. */
export class LogFiles {
  readonly #open = new Map<string, Open>();
  readonly #closing = new Set<Promise<void>>();

  /** Append `name`'s lines to `path` from now on. */
  open(name: string, path: string, worker: () => string | null): void {
    this.end(name);
    const writing = Deno.open(path, { append: true, create: true }).catch(() => null);
    this.#open.set(name, { path, worker, attempt: 0, writing });
  }

  write(name: string, line: LogLine): void {
    const open = this.#open.get(name);
    if (open === undefined) return;
    let text = `${line.line}\n`;
    if (line.attempt !== open.attempt) {
      open.attempt = line.attempt;
      const worker = open.worker();
      text = `--- ${name}: attempt ${line.attempt}${worker === null ? "" : ` on ${worker}`} ---\n${text}`;
    }
    const bytes = new TextEncoder().encode(text);
    open.writing = open.writing.then(async (file) => {
      if (file === null) return null;
      await file.write(bytes).catch(() => {});
      return file;
    });
  }

  /** The job ended: close its file after what is being written. */
  end(name: string): void {
    const open = this.#open.get(name);
    if (open === undefined) return;
    this.#open.delete(name);
    const closing = open.writing.then((file) => file?.close());
    this.#closing.add(closing);
    void closing.finally(() => this.#closing.delete(closing));
  }

  /** Close every file. */
  async close(): Promise<void> {
    const open = [...this.#open.values()];
    this.#open.clear();
    await Promise.all([...open.map((entry) => entry.writing.then((file) => file?.close())), ...this.#closing]);
  }
}
