/**
 * `ManagerEvent`s from today's public job API, until `manager.events()` exists: job names and states are
 * sampled every 100 ms (new jobs, QUEUED to ACTIVE, new attempts, progress, health), each job's output lines
 * come from `job.logs()`, and its end from `job.result()`.
 */

import type { Job, JobDroppedError, JobManager } from "../../mod.ts";
import type { ManagerEvent, ManagerEvents } from "./_events.ts";

const SAMPLE_MS = 100;

/**
 * The manager's events, derived from its public API.
 *
 * @param manager The manager to follow.
 * @returns A source of its events.
 */
export function eventsOf(manager: JobManager): ManagerEvents {
  return async function* (signal: AbortSignal): AsyncGenerator<ManagerEvent> {
    const queue: ManagerEvent[] = [];
    let wake: (() => void) | undefined;
    const push = (event: ManagerEvent) => {
      queue.push(event);
      wake?.();
      wake = undefined;
    };
    const seen = new Map<string, { job: Job; state: string; attempt: number; progress: number }>();
    let health = "";
    const sample = () => {
      const healthNow = JSON.stringify(manager.health);
      if (healthNow !== health) {
        health = healthNow;
        push({ type: "health", health: manager.health });
      }
      const names = new Set(manager.getJobNames());
      for (const name of seen.keys()) if (!names.has(name)) seen.delete(name);
      for (const name of names) {
        const job = manager.getJob(name);
        if (job === undefined) continue;
        let known = seen.get(name);
        // A new job, or a new job under an ended job's name (a re-run).
        if (known === undefined || known.job !== job) {
          known = { job, state: "", attempt: -1, progress: 0 };
          seen.set(name, known);
          if (job.state === "QUEUED" || job.state === "ACTIVE") {
            void (async () => {
              for await (const line of job.logs()) {
                if (signal.aborted) break;
                push({ type: "log", name, ...line });
              }
            })();
          }
          const entry = known;
          job.result().then(
            () => {
              if (signal.aborted || seen.get(name) !== entry) return;
              entry.state = "COMPLETED";
              push({ type: "progress", name, progress: 1 });
              push({ type: "state", name, state: "COMPLETED", attempt: job.attempts });
            },
            (error: JobDroppedError) => {
              if (signal.aborted || seen.get(name) !== entry) return;
              entry.state = "DROPPED";
              push({ type: "state", name, state: "DROPPED", attempt: error.attempts, reason: error.reason });
            },
          );
        }
        // Ends are published by the result() handlers above, with their reason.
        if (known.state === "COMPLETED" || known.state === "DROPPED") continue;
        if (job.state === "QUEUED" || job.state === "ACTIVE") {
          if (job.state !== known.state || job.attempts !== known.attempt) {
            known.state = job.state;
            known.attempt = job.attempts;
            push({ type: "state", name, state: job.state, attempt: job.attempts });
          }
          if (job.progress > known.progress) {
            known.progress = job.progress;
            push({ type: "progress", name, progress: job.progress });
          }
        }
      }
    };
    const timer = setInterval(sample, SAMPLE_MS);
    const onAbort = () => {
      wake?.();
      wake = undefined;
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      sample();
      while (!signal.aborted) {
        const event = queue.shift();
        if (event !== undefined) {
          yield event;
          continue;
        }
        await new Promise<void>((resolve) => wake = resolve);
      }
    } finally {
      clearInterval(timer);
      signal.removeEventListener("abort", onAbort);
    }
  };
}
