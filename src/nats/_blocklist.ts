/**
 * Keeping a worker away from what keeps failing on it. A job whose attempt failed on a worker through no fault of its
 * script's own code (Blender crashed, the attempt timed out or could not start) is not taken by that worker again
 * while another live worker can take it (`JobRecord.failedOn`); and a worker on which one script failed that way
 * several jobs in a row takes no job of that script for a while (its blocklist, advertised for the farm's view).
 * Declining a job costs a delivery, never an attempt: a job's attempts are counted in its record.
 */

/** The failures that count against a worker (the script's own errors and kills do not). */
export const WORKER_FAILURES: ReadonlySet<string> = new Set(["crashed", "timed-out", "start-failed"]);

/** How many such failures of one script in a row put it on a worker's blocklist, and for how long. */
export const BLOCK_AFTER = 3;
export const BLOCK_MS = 10 * 60_000;

/**
 * A consumer's MaxDeliver for jobs of `maxAttempts` attempts: attempts are counted in records, and deliveries beyond
 * them are for workers that decline a job (`_blocklist.ts`).
 */
export function deliveriesFor(maxAttempts: number): number {
  return maxAttempts * 3 + 2;
}

/** The most workers a record remembers a job failed on. */
export const MAX_FAILED_ON = 64;

/** One script a worker takes no job of, until when (advertised in `WorkerInfo.blocked`). */
export interface BlockedScript {
  readonly sha256: string;
  readonly name: string;
  readonly until: string;
}

/** A worker's scripts that keep failing on it. */
export class ScriptBlocklist {
  readonly #streaks = new Map<string, { name: string; streak: number; until: number }>();

  /** An attempt of the script `sha256` ended: a failure of `WORKER_FAILURES` lengthens its streak, a result ends it. */
  note(sha256: string, name: string, outcome: string): void {
    if (sha256 === "") return; // A record without a script: nothing to keep away from.
    if (outcome === "completed") {
      this.#streaks.delete(sha256);
      return;
    }
    if (!WORKER_FAILURES.has(outcome)) return;
    const entry = this.#streaks.get(sha256) ?? { name, streak: 0, until: 0 };
    entry.streak++;
    if (entry.streak >= BLOCK_AFTER) entry.until = Date.now() + BLOCK_MS;
    this.#streaks.set(sha256, entry);
    if (this.#streaks.size > 1000) this.#streaks.delete(this.#streaks.keys().next().value!);
  }

  /** Whether jobs of the script `sha256` are kept away from this worker now. */
  blocks(sha256: string): boolean {
    return (this.#streaks.get(sha256)?.until ?? 0) > Date.now();
  }

  /** The scripts blocked now. */
  list(): BlockedScript[] {
    const now = Date.now();
    return [...this.#streaks.entries()].filter(([, entry]) => entry.until > now)
      .map(([sha256, entry]) => ({ sha256, name: entry.name, until: new Date(entry.until).toISOString() }));
  }
}

/** `failedOn` with `worker` added (once; the latest `MAX_FAILED_ON` kept), from what a record says. */
export function withFailedOn(failedOn: unknown, worker: string): string[] {
  const known = Array.isArray(failedOn) ? failedOn.filter((each): each is string => typeof each === "string") : [];
  return [...known.filter((each) => each !== worker), worker].slice(-MAX_FAILED_ON);
}
