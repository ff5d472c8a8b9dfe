/**
 * The supervisor's pure policies: which failures are retried and after how
 * long, and the restart-intensity circuit (OTP's "at most R restarts in T",
 * shaped like std's `CircuitBreaker`) that stops starting Blender when it
 * keeps failing at start-up.
 */

import type { DropReason } from "../errors.ts";
import type { ManagerHealth } from "../types.ts";
import type { Clock } from "./clock.ts";

/** The reasons a failed attempt may be retried for; the one list of them. */
export const RETRYABLE_REASONS: readonly DropReason[] = ["error", "crashed", "timed-out", "start-failed"];

/** When and how soon a failed attempt is tried again. */
export interface RetryPolicy {
  /** The reasons that earn another attempt (a subset of `RETRYABLE_REASONS`). */
  readonly on: ReadonlySet<DropReason>;
  readonly initialDelayMs: number;
  readonly factor: number;
  readonly maxDelayMs: number;
}

/** The wait before attempt `attempt + 1`, after attempt `attempt` failed. */
export function backoffMs(
  policy: Pick<RetryPolicy, "initialDelayMs" | "factor" | "maxDelayMs">,
  attempt: number,
): number {
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** (attempt - 1));
}

/**
 * `ms` give or take `spread` of it, at random: many machines retrying after one failure (a server restart, a
 * worker lost) do not all come back at the same moment.
 */
export function jittered(ms: number, spread = 0.2, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (1 + spread * (2 * random() - 1))));
}

/** At most `maxFailures` start-up failures in `periodMs` before the supervisor stops starting Blender for a while. */
export interface RestartIntensity {
  readonly maxFailures: number;
  readonly periodMs: number;
}

/** Counts start-up failures; opens (health `"failing"`) when there are too many too fast. */
export class RestartCircuit {
  readonly #intensity: RestartIntensity;
  readonly #clock: Clock;
  #failures: number[] = [];
  #health: ManagerHealth = { status: "ok" };

  constructor(intensity: RestartIntensity, clock: Clock) {
    this.#intensity = intensity;
    this.#clock = clock;
  }

  get health(): ManagerHealth {
    return this.#health;
  }

  /** Whether nothing may be started now. */
  isOpen(): boolean {
    return this.#health.status === "failing" && this.#clock.now() < this.#health.retryAt.getTime();
  }

  /** Count a start-up failure; returns the new health when this one opened the circuit. */
  recordFailure(summary: string): ManagerHealth | undefined {
    const now = this.#clock.now();
    this.#failures = this.#failures.filter((at) => now - at < this.#intensity.periodMs);
    this.#failures.push(now);
    if (this.#failures.length <= this.#intensity.maxFailures) return undefined;
    this.#health = {
      status: "failing",
      reason: summary,
      failures: this.#failures.length,
      since: new Date(now),
      retryAt: new Date(now + this.#intensity.periodMs),
    };
    return this.#health;
  }

  /** Blender reached the job's code: close the circuit; returns the new health when it was open. */
  recordSuccess(): ManagerHealth | undefined {
    if (this.#health.status === "ok") return undefined;
    this.#failures = [];
    this.#health = { status: "ok" };
    return this.#health;
  }

  /** Why nothing is started, for the jobs dropped meanwhile. */
  summary(): string {
    const health = this.#health;
    return health.status === "failing"
      ? `Blender keeps failing at start-up (${health.failures} times in ${this.#intensity.periodMs} ms), ` +
        `so no job is started until ${health.retryAt.toISOString()}; last failure: ${health.reason}`
      : "";
  }
}
