/**
 * The one queue between a producer and its readers, in the shape of std's `async/unstable_channel.ts`: a
 * {@linkcode Channel} (values in order, a capacity with a policy for when it is full, `close(reason)`, reading
 * with an `AbortSignal`), and a {@linkcode Broadcast} that gives every value to each of its channels. An attempt's
 * events, a job's progress and lines, the manager's events and a render's progress all travel through these.
 */

/** What a full channel does with a new value: make room in `buffered` (and return nothing), or fail its reader. */
export type Overflow<T> = (buffered: T[], value: T) => Error | void;

/** Options of {@linkcode Channel}. */
export interface ChannelOptions<T> {
  /** How many values may wait. @default {Infinity} */
  readonly capacity?: number;
  /** When `capacity` values wait: by default the oldest is dropped. */
  readonly overflow?: Overflow<T>;
}

/** Values in, in order, to one reader. */
export class Channel<T> implements AsyncIterable<T> {
  readonly #capacity: number;
  readonly #overflow: Overflow<T>;
  #values: T[] = [];
  #closed = false;
  #failure: Error | undefined;
  #wake: (() => void) | undefined;
  /** Called once when the channel closes (its broadcast forgets it). */
  onClose: (() => void) | undefined;

  constructor(options: ChannelOptions<T> = {}) {
    this.#capacity = options.capacity ?? Infinity;
    this.#overflow = options.overflow ?? ((buffered) => void buffered.shift());
  }

  /** Whether the channel is closed (values may still wait to be read). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Add a value; ignored once closed. */
  send(value: T): void {
    if (this.#closed) return;
    if (this.#values.length >= this.#capacity) {
      const failure = this.#overflow(this.#values, value);
      if (failure !== undefined) return this.close(failure);
    }
    this.#values.push(value);
    this.#notify();
  }

  /** End the channel: without `reason` after the values waiting; with one, the reader gets it at once. */
  close(reason?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    if (reason !== undefined) {
      this.#failure = reason;
      this.#values = [];
    }
    this.#notify();
    this.onClose?.();
  }

  /** The next value; `done` once closed and read, or when `signal` aborts. Throws a `close(reason)`'s reason. */
  async receive(signal?: AbortSignal): Promise<IteratorResult<T, undefined>> {
    while (true) {
      if (signal?.aborted) return { done: true, value: undefined }; // An aborted reader reads nothing more.
      if (this.#values.length > 0) return { done: false, value: this.#values.shift()! };
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#closed) return { done: true, value: undefined };
      await new Promise<void>((wake) => {
        const stop = () => wake();
        signal?.addEventListener("abort", stop, { once: true });
        this.#wake = () => {
          signal?.removeEventListener("abort", stop);
          wake();
        };
      });
    }
  }

  /** The values until the channel ends or `signal` aborts (which closes it at once); leaving the loop closes it. */
  async *iterate(signal?: AbortSignal): AsyncGenerator<T, void, undefined> {
    const onAbort = () => this.close();
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) this.close();
    try {
      while (true) {
        const next = await this.receive(signal);
        if (next.done) return;
        yield next.value;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.close();
      this.#values = [];
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.iterate();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** Every value to each open channel; `close()` ends them all. */
export class Broadcast<T> {
  readonly #channels = new Set<Channel<T>>();
  #closed = false;

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** How many channels are open. */
  get size(): number {
    return this.#channels.size;
  }

  /** A new channel of the values sent from now on (closed at once when the broadcast is). */
  subscribe(options: ChannelOptions<T> = {}): Channel<T> {
    const channel = new Channel<T>(options);
    if (this.#closed) {
      channel.close();
      return channel;
    }
    this.#channels.add(channel);
    channel.onClose = () => this.#channels.delete(channel);
    return channel;
  }

  send(value: T): void {
    for (const channel of this.#channels) channel.send(value);
  }

  /** End every channel (each after what waits in it). */
  close(): void {
    this.#closed = true;
    for (const channel of [...this.#channels]) channel.close();
  }
}
