/** A one-reader queue of values as an async iterable: the event stream of an attempt. */

/** Push values in; one reader takes them out in order until `close()`. */
export class Channel<T> implements AsyncIterable<T> {
  #values: T[] = [];
  #closed = false;
  #wake: (() => void) | undefined;

  /** Add a value (ignored after `close()` or once the reader has left). */
  push(value: T): void {
    if (this.#closed) return;
    this.#values.push(value);
    this.#notify();
  }

  /** End the stream after the values already pushed. */
  close(): void {
    this.#closed = true;
    this.#notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    try {
      while (true) {
        const value = this.#values.shift();
        if (value !== undefined) {
          yield value;
          continue;
        }
        if (this.#closed) return;
        await new Promise<void>((wake) => this.#wake = wake);
      }
    } finally {
      this.#closed = true;
      this.#values = [];
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
