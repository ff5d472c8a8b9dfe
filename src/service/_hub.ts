/**
 * The one Server-Sent Events stream: every event gets an id and goes to every connected client; the last
 * `history` events (and at most `historyBytes` of them) are kept so a client that reconnects with `Last-Event-ID`
 * gets what it missed (older ids, or more than half its buffer, get a fresh snapshot instead). Each client's buffer
 * is bounded: a client that stops reading is dropped, not
 * buffered without limit. Clients that go away are forgotten at once.
 */

import type { ManagerEvent, ServiceEvent } from "./_events.ts";

/** What the hub streams. */
export type HubEvent = ManagerEvent | ServiceEvent;

/** Options of {@linkcode Hub}. */
export interface HubOptions {
  /** Bytes a client may have unread before it is dropped. */
  readonly clientBufferBytes: number;
  /** How many past events are kept for `Last-Event-ID` resume. */
  readonly history: number;
  /** How many bytes of past events are kept for resume, at most (a job printing long lines fills it fast). */
  readonly historyBytes: number;
  /** Milliseconds between keep-alive comments. */
  readonly keepAliveMs: number;
  /** Milliseconds a browser should wait before reconnecting (the `retry:` hint). */
  readonly retryMs: number;
  /** The state of everything now, sent first to a new client (and one that missed too much). */
  readonly snapshot: () => unknown;
}

interface Client {
  readonly job: string | undefined;
  /** What the client has not read yet, and its size: bounded by `clientBufferBytes`. */
  readonly queue: Uint8Array[];
  bytes: number;
  /** Set when the client's stream should end once its queue is sent. */
  ending: boolean;
  /** Wakes the stream's pending `pull()`. */
  wake: (() => void) | undefined;
}

const encoder = new TextEncoder();

/** Fans events out to SSE clients. */
export class Hub {
  readonly #options: HubOptions;
  readonly #clients = new Set<Client>();
  readonly #history: { id: number; event: HubEvent; chunk: Uint8Array }[] = [];
  #historyBytes = 0;
  #lastId = 0;
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(options: HubOptions) {
    this.#options = options;
  }

  /** How many clients are connected. */
  get clients(): number {
    return this.#clients.size;
  }

  /** Give `event` an id, keep it for resume, and send it to every client that wants it. */
  publish(event: HubEvent): void {
    if (this.#closed) return;
    const id = ++this.#lastId;
    const chunk = encoder.encode(`id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
    this.#history.push({ id, event, chunk });
    this.#historyBytes += chunk.byteLength;
    while (
      this.#history.length > this.#options.history ||
      (this.#historyBytes > this.#options.historyBytes && this.#history.length > 1)
    ) {
      this.#historyBytes -= this.#history.shift()!.chunk.byteLength;
    }
    for (const client of this.#clients) {
      if (client.job === undefined || ("name" in event && event.name === client.job)) this.#send(client, chunk);
    }
  }

  /**
   * A new client's stream.
   *
   * @param lastEventId The `Last-Event-ID` the client sent, if any.
   * @param job Only this job's events.
   */
  connect(lastEventId: string | null, job?: string): ReadableStream<Uint8Array> {
    const client: Client = { job, queue: [], bytes: 0, ending: this.#closed, wake: undefined };
    if (!this.#closed) {
      this.#clients.add(client);
      this.#send(client, encoder.encode(`retry: ${this.#options.retryMs}\n\n`));
      const last = lastEventId === null ? NaN : Number(lastEventId);
      const oldest = this.#history[0]?.id ?? this.#lastId + 1;
      const missed = Number.isInteger(last) && last <= this.#lastId && last >= oldest - 1
        ? this.#history.filter((entry) =>
          entry.id > last && (job === undefined || ("name" in entry.event && entry.event.name === job))
        )
        : undefined;
      const missedBytes = missed?.reduce((sum, entry) => sum + entry.chunk.byteLength, 0) ?? 0;
      // What it missed, unless that would not fit its buffer: it would be dropped at once, reconnect with the same
      // id, and never get anything. A snapshot says where everything is now instead.
      if (missed !== undefined && missedBytes <= this.#options.clientBufferBytes / 2) {
        for (const entry of missed) this.#send(client, entry.chunk);
      } else {
        const data = JSON.stringify(this.#options.snapshot());
        this.#send(client, encoder.encode(`id: ${this.#lastId}\nevent: snapshot\ndata: ${data}\n\n`));
      }
      this.#startKeepAlive();
    }
    // Pull-based: nothing waits in the stream itself, only in the client's bounded queue.
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          while (client.queue.length === 0 && !client.ending) {
            await new Promise<void>((resolve) => client.wake = resolve);
          }
          const chunk = client.queue.shift();
          if (chunk !== undefined) {
            client.bytes -= chunk.byteLength;
            controller.enqueue(chunk);
          } else {
            controller.close();
          }
        },
        cancel: () => this.#forget(client),
      },
      new CountQueuingStrategy({ highWaterMark: 0 }),
    );
  }

  /** End every client's stream (once what it has queued is sent) and stop; later events are ignored. */
  close(): void {
    this.#closed = true;
    for (const client of [...this.#clients]) this.#end(client, false);
  }

  #send(client: Client, chunk: Uint8Array): void {
    if (client.ending) return;
    if (client.bytes + chunk.byteLength > this.#options.clientBufferBytes) {
      // The client stopped reading: drop it and its queue rather than grow without limit.
      this.#end(client, true);
      return;
    }
    client.queue.push(chunk);
    client.bytes += chunk.byteLength;
    this.#wakeClient(client);
  }

  /** End a client's stream; `discard` drops what it has not read. */
  #end(client: Client, discard: boolean): void {
    this.#forget(client);
    client.ending = true;
    if (discard) {
      client.queue.length = 0;
      client.bytes = 0;
    }
    this.#wakeClient(client);
  }

  #wakeClient(client: Client): void {
    const wake = client.wake;
    client.wake = undefined;
    wake?.();
  }

  #forget(client: Client): void {
    this.#clients.delete(client);
    if (this.#clients.size === 0 && this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  #startKeepAlive(): void {
    if (this.#keepAlive !== undefined) return;
    const ping = encoder.encode(": keep-alive\n\n");
    this.#keepAlive = setInterval(() => {
      for (const client of this.#clients) this.#send(client, ping);
    }, this.#options.keepAliveMs);
  }
}
