/**
 * A runner in plain TypeScript, no Blender: each attempt waits for the test
 * to end it. With `FakeClock`, the supervisor's policies (backoff, restart
 * intensity, timeouts) are tested fast and deterministically.
 */

import { Channel } from "../src/channel.ts";
import type {
  AttemptEvent,
  AttemptFacts,
  AttemptHandle,
  AttemptOutcome,
  AttemptPlan,
  KillReason,
  Runner,
  WarmExit,
} from "../src/local/runners/runner.ts";
import type { Clock, TimerId } from "../src/local/clock.ts";
import type { DropReason } from "../src/errors.ts";
import type { JsonObject } from "../src/types.ts";

/** One attempt the test drives. */
export class ScriptedAttempt {
  readonly plan: AttemptPlan;
  readonly events: Channel<AttemptEvent> = new Channel();
  killedWith: KillReason | undefined;
  #ended = false;
  readonly #gone = Promise.withResolvers<void>();

  constructor(plan: AttemptPlan) {
    this.plan = plan;
  }

  get handle(): AttemptHandle {
    return {
      events: this.events,
      kill: (reason) => {
        this.killedWith ??= reason;
        this.fail(reason, `the attempt was ended (${reason})`); // Like a process that dies at once.
      },
      gone: this.#gone.promise,
    };
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Send any event, even one the Job actor does not know (to make it crash). */
  emit(event: AttemptEvent): void {
    this.events.send(event);
  }

  complete(pythonData: JsonObject = {}): void {
    this.#end({
      kind: "completed",
      pythonData,
      dataBlocks: null,
      outputs: [],
      outputsFolder: null,
      facts: this.#facts(0),
    });
  }

  fail(reason: DropReason, summary: string = reason, startFailure = false): void {
    this.#end({ kind: "failed", reason, summary, pythonError: null, startFailure, facts: this.#facts(1) });
  }

  #end(outcome: AttemptOutcome): void {
    if (this.#ended) return;
    this.#ended = true;
    this.events.send({ type: "ended", outcome });
    this.events.close();
    this.#gone.resolve();
  }

  #facts(exitCode: number): AttemptFacts {
    const now = new Date(0);
    return {
      attempt: this.plan.attempt,
      ranOn: `scripted ${this.plan.name}#${this.plan.attempt}`,
      startedAt: now,
      endedAt: now,
      exitCode,
      signal: null,
      stdout: "",
      stderr: "",
    };
  }
}

/** Starts `ScriptedAttempt`s; `onStart` may script each at once. */
export class ScriptedRunner implements Runner {
  readonly attempts: ScriptedAttempt[] = [];
  onStart: ((attempt: ScriptedAttempt) => void) | undefined;
  closed = false;

  /** The warm-exit listener the supervisor gave, for tests to call. */
  warmExit: ((exit: WarmExit) => void) | undefined;
  /** The flavours the supervisor asked to restart, in order. */
  readonly restarts: boolean[] = [];

  onWarmExit(listener: (exit: WarmExit) => void): void {
    this.warmExit = listener;
  }

  restartWarm(factoryStartup: boolean): void {
    this.restarts.push(factoryStartup);
  }

  start(plan: AttemptPlan): AttemptHandle {
    const attempt = new ScriptedAttempt(plan);
    this.attempts.push(attempt);
    attempt.emit({ type: "started", ranOn: `scripted ${plan.name}#${plan.attempt}` });
    this.onStart?.(attempt);
    return attempt.handle;
  }

  /** The attempts not ended yet. */
  running(): ScriptedAttempt[] {
    return this.attempts.filter((attempt) => !attempt.ended);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** A clock that moves only when told; timers fire in order of their due time. */
export class FakeClock implements Clock {
  #now = 1_000_000;
  #next = 1;
  readonly #timers = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerId {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + ms, callback });
    return id as unknown as TimerId;
  }

  clearTimeout(id: TimerId): void {
    this.#timers.delete(id as unknown as number);
  }

  /** How many timers are pending. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Move time forward by `ms`, firing each timer that falls due. */
  advance(ms: number): void {
    const until = this.#now + ms;
    while (true) {
      let first: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= until && (!first || entry[1].at < first[1].at)) first = entry;
      }
      if (first === undefined) break;
      this.#timers.delete(first[0]);
      this.#now = first[1].at;
      first[1].callback();
    }
    this.#now = until;
  }
}

/** Let every actor handle what is in its mailbox. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}
