/**
 * The actor kernel: a FIFO mailbox, one processing loop, `tell` and `ask`.
 *
 * An actor's state lives in its behaviour object and is touched only by its
 * own `receive`, one message at a time. A `receive` that throws stops the
 * actor: pending and later `ask`s reject, and the parent hears of it through
 * `onCrash`. The actor does not heal itself; its parent decides.
 *
 * @module
 */

/** How an `ask` gets its answer: the message carries one of these. */
export interface Reply<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** What an actor does with each message. */
export interface Behavior<M> {
  receive(message: M): void | Promise<void>;
}

/** Options of {@linkcode ActorRef.ask}. */
export interface AskOptions {
  signal?: AbortSignal;
}

/** The only way to reach an actor. */
export interface ActorRef<M> {
  /** Deliver `message` and return at once. */
  tell(message: M): void;
  /** Deliver the message `make` builds around a reply, and wait for that reply. */
  ask<R>(make: (reply: Reply<R>) => M, options?: AskOptions): Promise<R>;
  /** Stop taking messages once the ones already delivered are handled. */
  stop(): Promise<void>;
}

/** Raised by `tell`/`ask` on an actor that has stopped. */
export class ActorStoppedError extends Error {
  constructor(name: string, cause?: unknown) {
    super(`Actor '${name}' has stopped`, cause === undefined ? {} : { cause });
    this.name = "ActorStoppedError";
  }
}

/**
 * Start an actor with `behavior`. `onCrash` is the parent's: it hears of a
 * `receive` that threw (after the actor has stopped), and should turn it
 * into a message to the parent. It is required: a crash nobody hears of is
 * no supervision.
 */
export function spawnActor<M>(
  name: string,
  behavior: Behavior<M>,
  onCrash: (error: unknown) => void,
): ActorRef<M> {
  const mailbox: M[] = [];
  let running = false;
  let stopping = false;
  let crashed: unknown = undefined;
  let idle: PromiseWithResolvers<void> | undefined;
  const pendingAsks = new Set<(error: unknown) => void>();

  const processMailbox = async () => {
    running = true;
    while (mailbox.length > 0 && crashed === undefined) {
      const message = mailbox.shift() as M;
      try {
        await behavior.receive(message);
      } catch (error) {
        crashed = error ?? new Error("unknown error");
        mailbox.length = 0;
        for (const reject of pendingAsks) reject(new ActorStoppedError(name, error));
        onCrash(error);
      }
    }
    running = false;
    idle?.resolve();
    idle = undefined;
  };

  const deliver = (message: M) => {
    if (stopping || crashed !== undefined) throw new ActorStoppedError(name, crashed);
    mailbox.push(message);
    if (!running) void processMailbox();
  };

  return {
    tell: deliver,
    ask<R>(make: (reply: Reply<R>) => M, options: AskOptions = {}): Promise<R> {
      const { signal } = options;
      if (signal?.aborted) return Promise.reject(signal.reason);
      const answer = Promise.withResolvers<R>();
      const onAbort = () => answer.reject(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      pendingAsks.add(answer.reject);
      try {
        deliver(make({ resolve: answer.resolve, reject: answer.reject }));
      } catch (error) {
        answer.reject(error);
      }
      return answer.promise.finally(() => {
        pendingAsks.delete(answer.reject);
        signal?.removeEventListener("abort", onAbort);
      });
    },
    stop(): Promise<void> {
      stopping = true;
      if (!running) return Promise.resolve();
      idle ??= Promise.withResolvers<void>();
      return idle.promise;
    },
  };
}

/** Fail the build when a `switch` over a message union misses a case. */
export function unreachable(message: never): never {
  throw new TypeError(`Unhandled message: ${JSON.stringify(message)}`);
}
