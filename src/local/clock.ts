/** Time, for the supervisor and the Job actor: injected so tests can drive it. */

/** A timer's handle. */
export type TimerId = ReturnType<typeof setTimeout>;

/** Time, as the supervisor reads it and sets timers. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerId;
  clearTimeout(id: TimerId): void;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (id) => clearTimeout(id),
};
